// Approval: a human decision pending on one exact call (DESIGN.md section 6). Created when a
// call is approval_needed (or joined, when the identical call is already pending), voted on by
// approvers, resolved approved, denied or expired.
#ifndef AEGIS_APPROVALS_APPROVAL_H_
#define AEGIS_APPROVALS_APPROVAL_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace aegis::approvals {

enum class State { kPending, kApproved, kDenied, kExpired };
// "pending", "approved", "denied", "expired".
std::string_view StateName(State s);
std::optional<State> ParseState(std::string_view s);

struct Vote {
  std::string approver;  // the approver's identity, from their credential
  bool approve = false;  // false: deny
  int64_t at = 0;        // Unix seconds
  std::string comment;
};

struct Approval {
  std::string id;  // "apr_" + 32 lower-case hex characters, random
  std::string tenant, agent, tool, action;
  std::string call_digest;   // engine::CallDigest of the call: hex SHA-256
  std::string rule_id;       // the rule that asked for approval
  std::string message;       // the rule's message
  std::string summary_json;  // a JSON object describing the call, parameters already redacted
  int quorum = 1;            // distinct approvers needed
  int64_t created_at = 0, expires_at = 0, decided_at = 0;  // Unix seconds; decided_at 0: not yet
  State state = State::kPending;
  std::vector<Vote> votes;  // in the order they were cast

  // The approval as JSON for the API and webhooks: every field above, times as RFC 3339.
  std::string ToJson() const;
};

}  // namespace aegis::approvals

#endif  // AEGIS_APPROVALS_APPROVAL_H_
