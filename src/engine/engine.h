// Engine: CallContext in, Decision out, through the pipeline of DESIGN.md section 3.
//
//   1 parse/normalise (ParseCall, before the engine)   6 override
//   2 identify                                          7 limits
//   3 resolve tool/action                               8 obligations (sanitize)
//   4 scope                                             9 mode
//   5 rules                                            10 record          (audit issue)
//
// Stage 10 is later work; Decide() marks where each plugs in. The engine is the same
// for every front door. Decide() is thread-safe; it blocks only on the limit store and the
// override redeemer when they are shared (Redis).
#ifndef AEGIS_ENGINE_ENGINE_H_
#define AEGIS_ENGINE_ENGINE_H_

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/call_context.h"
#include "engine/decision.h"
#include "engine/overrides.h"
#include "limits/limits.h"
#include "policy/policy.h"
#include "redact/redact.h"

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
  // `redaction_key` keys the fingerprints of sanitize rules with style hash (HMAC-SHA256, 32+
  // bytes); without one such rules deny with redaction_error.
  explicit Engine(std::shared_ptr<const policy::CompiledPolicy> policy,
                  limits::LimitStore* limits = nullptr, OverrideRedeemer* overrides = nullptr,
                  const std::string& redaction_key = "");

  Decision Decide(const CallContext& call, DecideTrace* trace = nullptr) const;

  // Whether the call's agent can ever get `call.tool` / `call.action` allowed — for a front
  // door that lists tools (MCP tools/list): the call resolves and is in scope (stages 2-4), no
  // unconditional deny rule matches it, and either some allow, sanitize or approval_needed rule
  // could match it (whatever its condition) or the default is not deny. In shadow mode every
  // call is offered. Parameters are not looked at; nothing is counted or recorded. A tool this
  // returns false for is denied by Decide whatever its parameters, so listing and calling
  // never disagree.
  bool Offers(const CallContext& call) const;

  const std::shared_ptr<const policy::CompiledPolicy>& policy() const { return policy_; }

 private:
  void ApplyLimits(const policy::CompiledPolicy& p, const policy::Tool* tool,
                   const CallContext& call, Decision& d) const;
  void Sanitize(const CallContext& call, Decision& d) const;

  std::shared_ptr<const policy::CompiledPolicy> policy_;
  limits::LimitStore* limits_;
  OverrideRedeemer* overrides_;
  std::unordered_map<const policy::Rule*, redact::Redactor> redactors_;
  std::unordered_map<const policy::Rule*, std::string> redactor_errors_;
};

}  // namespace aegis::engine

#endif  // AEGIS_ENGINE_ENGINE_H_
