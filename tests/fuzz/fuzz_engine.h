// The engine the front-door fuzz targets decide with: a small policy with a tool catalog, an
// agent scoped to one host, a condition over params (including a regex) and an allow rule, so
// fuzzed calls reach every stage of the pipeline.
#ifndef AEGIS_TESTS_FUZZ_FUZZ_ENGINE_H_
#define AEGIS_TESTS_FUZZ_FUZZ_ENGINE_H_

#include <cstdlib>

#include "engine/engine.h"
#include "policy/compiler.h"

namespace aegis::fuzz {

inline const engine::Engine& FuzzEngine() {
  static const auto* engine = [] {
    auto out = policy::CompileFiles({{"p.yaml", R"(apiVersion: aegis/v1
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
    return new engine::Engine(out.policy);
  }();
  return *engine;
}

}  // namespace aegis::fuzz

#endif  // AEGIS_TESTS_FUZZ_FUZZ_ENGINE_H_
