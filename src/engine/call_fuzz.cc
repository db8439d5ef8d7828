// Fuzz target for the call-JSON parser: any bytes either parse into a CallContext whose names,
// host and path are normalised, or produce an error. Parsed calls then go through the engine on
// the shared fuzz policy (tests/fuzz/fuzz_engine.h); no input may crash it.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/call_context.h"
#include "tests/fuzz/fuzz_engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const aegis::engine::Engine& engine = aegis::fuzz::FuzzEngine();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto call = aegis::engine::ParseCall(text, 0);
  if (!call.ok()) return 0;
  if (call->agent.empty()) std::abort();
  auto decision = engine.Decide(*call);
  if (decision.reasons.empty()) std::abort();
  return 0;
}
