// Fuzz target for the gRPC front door's input: any bytes, parsed as an Envoy CheckRequest, either
// fail to parse, or map to a call, or are refused as bad input — and a request that maps to a call
// gets a decision on the shared fuzz policy (tests/fuzz/fuzz_engine.h); nothing crashes. A bad-input answer is
// never an allow.
#include <cstdint>
#include <cstdlib>

#include "frontdoors/extauthz_grpc.h"
#include "tests/fuzz/fuzz_engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const aegis::engine::Engine& engine = aegis::fuzz::FuzzEngine();
  envoy::service::auth::v3::CheckRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  auto call = aegis::frontdoors::CallFromCheckRequest(request, 0);
  envoy::service::auth::v3::CheckResponse response;
  if (!call.ok()) {
    aegis::frontdoors::BadInputToCheckResponse(call.status(), &response);
    if (response.status().code() == 0) std::abort();  // bad input must not allow
    return 0;
  }
  auto decision = engine.Decide(*call);
  aegis::frontdoors::DecisionToCheckResponse(decision, aegis::frontdoors::HasBody(request), 403,
                                             &response);
  // A refusal must never come back as an allow.
  if (decision.effective() != aegis::policy::Effect::kAllow &&
      decision.effective() != aegis::policy::Effect::kSanitize && response.status().code() == 0) {
    std::abort();
  }
  return 0;
}
