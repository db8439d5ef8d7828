// Fuzz target for the strict JSON parser: any bytes either parse or produce an error; a parsed
// value re-serialises canonically and parses back to the same value.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = aegis::common::ParseJson(text);
  if (!parsed.ok()) return 0;
  std::string canonical = parsed->Canonical();
  auto again = aegis::common::ParseJson(canonical, {.max_bytes = 1 << 24, .max_depth = 64});
  if (!again.ok() || !(*again == *parsed)) std::abort();
  return 0;
}
