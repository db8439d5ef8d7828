// Fuzz target for the gRPC front door's input: any bytes, parsed as an Envoy CheckRequest, either
// fail to parse, or map to a call, or are refused as bad input — and a request that maps to a call
// gets a decision on the quickstart-like policy below; nothing crashes. A bad-input answer is
// never an allow.
#include <cstdint>
#include <cstdlib>

#include "frontdoors/extauthz_grpc.h"
#include "policy/compiler.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* engine = [] {
    auto out = aegis::policy::CompileFiles({{"p.yaml", R"(apiVersion: aegis/v1
kind: Policy
tools:
  stripe:
    hosts: [api.stripe.com]
    actions:
      create_payment: {method: POST, path: /v1/payment_intents}
agents:
  a: {tools: [stripe], allowed_domains: [api.stripe.com]}
rules:
  - {id: big, match: {tools: [stripe]}, if: params.amount > 5000, effect: deny}
  - {id: ok, match: {agents: [a]}, effect: allow}
)"}},
                                             "fuzz");
    if (!out.policy) std::abort();
    return new aegis::engine::Engine(out.policy);
  }();
  envoy::service::auth::v3::CheckRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  auto call = aegis::frontdoors::CallFromCheckRequest(request, 0);
  envoy::service::auth::v3::CheckResponse response;
  if (!call.ok()) {
    aegis::frontdoors::BadInputToCheckResponse(call.status(), &response);
    if (response.status().code() == 0) std::abort();  // bad input must not allow
    return 0;
  }
  auto decision = engine->Decide(*call);
  aegis::frontdoors::DecisionToCheckResponse(decision, aegis::frontdoors::HasBody(request), 403,
                                             &response);
  // A refusal must never come back as an allow.
  if (decision.effective() != aegis::policy::Effect::kAllow &&
      decision.effective() != aegis::policy::Effect::kSanitize && response.status().code() == 0) {
    std::abort();
  }
  return 0;
}
