// Engine: CallContext in, Decision out, through the pipeline of DESIGN.md section 3.
//
//   1 parse/normalise (ParseCall, before the engine)   6 override
//   2 identify                                          7 limits
//   3 resolve tool/action                               8 obligations     (redaction issue)
//   4 scope                                             9 mode
//   5 rules                                            10 record          (audit issue)
//
// Stages 8 and 10 are later work; Decide() marks where each plugs in. The engine is the same
// for every front door. Decide() is thread-safe; it blocks only on the limit store and the
// override redeemer when they are shared (Redis).
#ifndef AEGIS_ENGINE_ENGINE_H_
#define AEGIS_ENGINE_ENGINE_H_

#include <memory>
#include <vector>

#include "engine/call_context.h"
#include "engine/decision.h"
#include "engine/overrides.h"
#include "limits/limits.h"
#include "policy/policy.h"

namespace aegis::engine {

// What Decide() saw, for policy tests and explanations: every rule whose match and condition
// held (or whose condition erred). With a trace, every candidate rule is evaluated, where
// without one evaluation stops once the outcome cannot change; the decision is the same.
struct DecideTrace {
  std::vector<const policy::Rule*> matched;
};

class Engine {
 public:
  // `limits` (optional, not owned, shared by every policy version) enforces the agents' rate
  // limits and budgets in stage 7; without it no limits apply. `overrides` (optional, not
  // owned) redeems override tokens in stage 6; without it a presented token is refused.
  explicit Engine(std::shared_ptr<const policy::CompiledPolicy> policy,
                  limits::LimitStore* limits = nullptr, OverrideRedeemer* overrides = nullptr);

  Decision Decide(const CallContext& call, DecideTrace* trace = nullptr) const;

  const std::shared_ptr<const policy::CompiledPolicy>& policy() const { return policy_; }

 private:
  void ApplyLimits(const policy::CompiledPolicy& p, const policy::Tool* tool,
                   const CallContext& call, Decision& d) const;

  std::shared_ptr<const policy::CompiledPolicy> policy_;
  limits::LimitStore* limits_;
  OverrideRedeemer* overrides_;
};

}  // namespace aegis::engine

#endif  // AEGIS_ENGINE_ENGINE_H_
