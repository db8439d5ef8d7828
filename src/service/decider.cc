#include "service/decider.h"

#include <chrono>

#include "common/digest.h"

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

Decider::Decider(const PolicyStore& store, Metrics& metrics, ApprovalService* approvals,
                 audit::Writer* audit)
    : store_(store),
      metrics_(metrics),
      approvals_(approvals),
      audit_(audit),
      redactor_(*redact::Redactor::Create({"all"}, redact::Style::kMask, "")) {}

audit::Record Decider::AuditRecord(const engine::Decision& d, const engine::CallContext& call,
                                   FrontDoor front_door) const {
  audit::Record r;
  r.decision_id = std::string(d.id_view());
  r.tenant = d.tenant;
  r.agent = d.agent;
  r.tool = d.tool;
  r.action = d.action;
  r.decision = std::string(policy::EffectName(d.outcome));
  r.effective = std::string(policy::EffectName(d.effective()));
  r.policy_version = d.policy ? d.policy->version : "";
  r.front_door = std::string(FrontDoorName(front_door));
  for (const auto& reason : d.reasons) r.reasons.emplace_back(reason.code);
  if (d.deciding_rule) r.rule = d.deciding_rule->id;
  r.cost_micros = d.cost;
  r.time_unix_nanos = call.now_unix_nanos;
  std::string raw = call.params.Canonical();
  r.params_sha256 = common::Sha256Hex(raw);
  common::Json redacted = call.params;
  redactor_.RedactJson(redacted, {});
  r.params_redacted_json = redacted.Canonical();
  r.approval_id = d.approval_id;
  return r;
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
  // Stage 10, record. A decision the trail cannot take is refused (fail closed): nothing
  // happens that is not recorded.
  if (audit_ && !audit_->Append(AuditRecord(d, call, front_door))) {
    d.outcome = policy::Effect::kDeny;
    d.reasons.insert(d.reasons.begin(), engine::Reason{engine::reason::kAuditUnavailable, nullptr,
                                                       "the audit trail cannot take the record"});
  }
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
    if (d.reasons.front().code == engine::reason::kLimitsUnavailable ||
        d.reasons.front().code == engine::reason::kAuditUnavailable) {
      return 503;
    }
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
