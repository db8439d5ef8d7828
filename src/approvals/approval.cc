#include "approvals/approval.h"

#include "common/json.h"
#include "common/strings.h"
#include "expr/time_util.h"

namespace aegis::approvals {

std::string_view StateName(State s) {
  switch (s) {
    case State::kPending:
      return "pending";
    case State::kApproved:
      return "approved";
    case State::kDenied:
      return "denied";
    case State::kExpired:
      return "expired";
  }
  return "pending";
}

std::optional<State> ParseState(std::string_view s) {
  for (State st : {State::kPending, State::kApproved, State::kDenied, State::kExpired}) {
    if (StateName(st) == s) return st;
  }
  return std::nullopt;
}

namespace {
void AppendTime(std::string& out, int64_t seconds) {
  std::string t;
  expr::internal::AppendTimestamp(t, seconds * 1'000'000'000);
  common::AppendJsonString(out, t);
}
}  // namespace

std::string Approval::ToJson() const {
  using common::AppendJsonString;
  std::string out = "{\"id\":";
  AppendJsonString(out, id);
  out += ",\"state\":";
  AppendJsonString(out, StateName(state));
  for (auto [name, value] : {std::pair<const char*, const std::string*>{"tenant", &tenant},
                             {"agent", &agent},
                             {"tool", &tool},
                             {"action", &action},
                             {"call_digest", &call_digest},
                             {"rule", &rule_id},
                             {"message", &message}}) {
    out += common::StrCat(",\"", name, "\":");
    AppendJsonString(out, *value);
  }
  out += ",\"summary\":";
  out += summary_json.empty() ? "{}" : summary_json;
  out += common::StrCat(",\"quorum\":", quorum);
  int approvals = 0;
  for (const Vote& v : votes) approvals += v.approve ? 1 : 0;
  out += common::StrCat(",\"approvals\":", approvals);
  out += ",\"created_at\":";
  AppendTime(out, created_at);
  out += ",\"expires_at\":";
  AppendTime(out, expires_at);
  if (decided_at) {
    out += ",\"decided_at\":";
    AppendTime(out, decided_at);
  }
  out += ",\"votes\":[";
  for (size_t i = 0; i < votes.size(); ++i) {
    if (i) out += ",";
    out += "{\"approver\":";
    AppendJsonString(out, votes[i].approver);
    out += votes[i].approve ? ",\"verdict\":\"approve\"" : ",\"verdict\":\"deny\"";
    out += ",\"at\":";
    AppendTime(out, votes[i].at);
    if (!votes[i].comment.empty()) {
      out += ",\"comment\":";
      AppendJsonString(out, votes[i].comment);
    }
    out += "}";
  }
  out += "]}";
  return out;
}

}  // namespace aegis::approvals
