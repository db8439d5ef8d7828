// Fuzz target for the bundle compiler: any bytes as a policy file either compile or produce
// diagnostics with a location in that file; nothing crashes, hangs or throws.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "policy/compiler.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto out = aegis::policy::CompileFiles({{"fuzz.yaml", text}}, "fuzz");
  if (!out.policy && !out.diagnostics.has_errors()) std::abort();
  for (const auto& d : out.diagnostics.all()) {
    if (d.location.file != "fuzz.yaml") std::abort();
  }
  return 0;
}
