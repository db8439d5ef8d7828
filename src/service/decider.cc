#include "service/decider.h"

#include <chrono>

namespace aegis::service {

std::string_view FrontDoorName(FrontDoor f) {
  switch (f) {
    case FrontDoor::kDecideApi:
      return "decide_api";
    case FrontDoor::kAuthzHttp:
      return "authz_http";
    case FrontDoor::kExtAuthzGrpc:
      return "extauthz_grpc";
    case FrontDoor::kCli:
      return "cli";
  }
  return "unknown";
}

int64_t Decider::NowUnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

engine::Decision Decider::Decide(const engine::CallContext& call, FrontDoor front_door) const {
  auto start = std::chrono::steady_clock::now();
  // One load: the whole decision uses this version, whatever reloads happen meanwhile.
  std::shared_ptr<const PolicyVersion> version = store_.Active();
  engine::Decision d = version->engine->Decide(call);
  if (approvals_ && d.outcome == policy::Effect::kApprovalNeeded) approvals_->Attach(d, call);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count();
  // Only names the policy declares become labels; anything else a caller sent is "_unknown".
  const policy::CompiledPolicy& p = *d.policy;
  bool agent_known = p.FindAgent(d.tenant, d.agent) != nullptr;
  bool tool_known = agent_known && !d.tool.empty() && p.FindTool(d.tenant, d.tool) != nullptr;
  Metrics::Subject subject{agent_known ? std::string_view(d.tenant) : "_unknown",
                           agent_known ? std::string_view(d.agent) : "_unknown",
                           tool_known ? std::string_view(d.tool) : "_unknown"};
  metrics_.RecordDecision(static_cast<int>(front_door), d.outcome, d.enforced(), subject, nanos);
  return d;
}

int Decider::HttpStatus(const engine::Decision& d) {
  if (d.enforced() && !d.reasons.empty()) {
    if (d.reasons.front().code == engine::reason::kRateLimited) return 429;
    if (d.reasons.front().code == engine::reason::kBudgetExceeded) return 402;
    if (d.reasons.front().code == engine::reason::kLimitsUnavailable) return 503;
  }
  switch (d.effective()) {
    case policy::Effect::kAllow:
    case policy::Effect::kSanitize:
      return 200;
    case policy::Effect::kApprovalNeeded:
    case policy::Effect::kDeny:
      return 403;
  }
  return 403;
}

}  // namespace aegis::service
