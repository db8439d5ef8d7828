// Fuzz target for the call-JSON parser: any bytes either parse into a CallContext whose names,
// host and path are normalised, or produce an error. Parsed calls then go through the engine on
// the quickstart policy; no input may crash it.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/call_context.h"
#include "engine/engine.h"
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
  - id: big
    match: {tools: [stripe]}
    if: params.amount > 5000 || params.note.matches("x+y")
    effect: deny
  - {id: ok, match: {agents: [a]}, effect: allow}
)"}},
                                             "fuzz");
    if (!out.policy) std::abort();
    return new aegis::engine::Engine(out.policy);
  }();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto call = aegis::engine::ParseCall(text, 0);
  if (!call.ok()) return 0;
  if (call->agent.empty()) std::abort();
  auto decision = engine->Decide(*call);
  if (decision.reasons.empty()) std::abort();
  return 0;
}
