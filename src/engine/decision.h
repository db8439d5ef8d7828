// Decision: what the engine concluded about one call, and why.
#ifndef AEGIS_ENGINE_DECISION_H_
#define AEGIS_ENGINE_DECISION_H_

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace aegis::engine {

// Stable reason codes (docs/decide-api.md lists them with their meaning).
namespace reason {
inline constexpr std::string_view kRule = "rule";                      // a rule decided
inline constexpr std::string_view kConditionError = "condition_error";  // a rule's `if` failed
inline constexpr std::string_view kDefault = "default";                // no rule matched
inline constexpr std::string_view kUnknownAgent = "unknown_agent";
inline constexpr std::string_view kUnknownTool = "unknown_tool";
inline constexpr std::string_view kUnknownAction = "unknown_action";
inline constexpr std::string_view kUnresolved = "unresolved_call";     // catalog has no match
inline constexpr std::string_view kToolOutOfScope = "tool_out_of_scope";
inline constexpr std::string_view kHostNotInTool = "host_not_in_tool";
inline constexpr std::string_view kDomainOutOfScope = "domain_out_of_scope";
inline constexpr std::string_view kShadowMode = "shadow_mode";
inline constexpr std::string_view kRateLimited = "rate_limited";      // detail: the limit's key
inline constexpr std::string_view kBudgetExceeded = "budget_exceeded";  // detail: the budget's key
// The verified agent token names another agent or tenant than the call (stage 2).
inline constexpr std::string_view kIdentityMismatch = "identity_mismatch";
// approval_needed turned into allow by a valid override token; detail: the approval id.
inline constexpr std::string_view kApproved = "approved";
// An override token came with the call and was refused; detail: why. The call stays
// approval_needed.
inline constexpr std::string_view kOverrideInvalid = "override_invalid";
// A sanitize rule's redaction could not be applied (e.g. style hash without a key): fail closed.
inline constexpr std::string_view kRedactionError = "redaction_error";
// The audit trail could not take the decision's record (its queue is full or it failed) and
// its overflow policy is fail_closed.
inline constexpr std::string_view kAuditUnavailable = "audit_unavailable";
// The shared limits store could not be asked and its fail mode is fail_closed.
inline constexpr std::string_view kLimitsUnavailable = "limits_unavailable";
// The call's cost_usd expression failed or gave no valid cost; detail: why.
inline constexpr std::string_view kCostError = "cost_error";

// Whether `code` is one of the codes above.
bool IsKnownCode(std::string_view code);
}  // namespace reason

struct Reason {
  std::string_view code;              // one of reason::k*
  const policy::Rule* rule = nullptr; // the rule, when one is involved
  std::string detail;                 // e.g. the condition error; empty otherwise
};

struct Decision {
  std::array<char, 36> id{};  // UUIDv7 text, time-ordered
  policy::Effect outcome = policy::Effect::kDeny;  // what the policy decided
  policy::Mode mode = policy::Mode::kEnforce;
  std::vector<Reason> reasons;  // the deciding reason first
  std::shared_ptr<const policy::CompiledPolicy> policy;  // keeps rules alive for `reasons`
  std::string tenant, agent, tool, action;
  policy::Micros cost = 0;
  const policy::Rule* deciding_rule = nullptr;
  // Sanitize: the redactions of every matching sanitize rule, merged, and those rules.
  policy::RedactSpec redact;
  std::vector<const policy::Rule*> sanitize_rules;
  // Stage 8, sanitize: the parameters with every redaction applied, and the paths that changed.
  std::optional<common::Json> sanitized_params;
  std::vector<std::string> redacted_paths;
  // Limits (stage 7): whether the cost was reserved under this decision's id (settle it with
  // POST /v1/usage); for rate_limited, when to retry; for budget_exceeded, what is left and
  // when the window resets.
  bool reserved = false;
  // approval_needed: the approval created or joined for this call (set by the service after
  // the engine decided); allow by override: the approval that allowed it.
  std::string approval_id;
  // The shared limits store could not be asked; the local fallback decided (fail_open).
  bool limits_fail_open = false;
  int64_t retry_after_nanos = 0;
  policy::Micros budget_remaining = 0;
  int64_t budget_resets_unix_nanos = 0;

  std::string_view id_view() const { return std::string_view(id.data(), id.size()); }
  // Whether front doors apply `outcome`; false in shadow mode, where the call proceeds.
  bool enforced() const { return mode == policy::Mode::kEnforce; }
  // What the front door applies: `outcome` when enforced, allow in shadow mode.
  policy::Effect effective() const { return enforced() ? outcome : policy::Effect::kAllow; }

  // The decision JSON of the decide API (docs/decide-api.md).
  std::string ToJson() const;
};

}  // namespace aegis::engine

#endif  // AEGIS_ENGINE_DECISION_H_
