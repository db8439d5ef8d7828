#include "service/decider.h"

#include <chrono>

#include "common/digest.h"
#include "engine/call_digest.h"
#include "telemetry/span.h"
#include "telemetry/trace_context.h"

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
    case FrontDoor::kProxy:
      return "proxy";
    case FrontDoor::kMcp:
      return "mcp";
    case FrontDoor::kFailOpenReport:
      return "fail_open_report";
  }
  return "unknown";
}

Decider::Decider(const PolicyStore& store, Metrics& metrics, ApprovalService* approvals,
                 audit::Writer* audit, telemetry::Exporter* traces, double sample_ratio)
    : store_(store),
      metrics_(metrics),
      approvals_(approvals),
      audit_(audit),
      traces_(traces),
      sample_ratio_(sample_ratio),
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
  // RFC 8785 (JCS), as the call digest uses: an SDK can match a record to its call.
  std::string raw;
  engine::AppendJcs(raw, call.params);
  r.params_sha256 = common::Sha256Hex(raw);
  common::Json redacted = call.params;
  redactor_.RedactJson(redacted, {});
  r.params_redacted_json = redacted.Canonical();
  r.approval_id = d.approval_id;
  return r;
}

bool Decider::Offers(const engine::CallContext& call) const {
  std::shared_ptr<const PolicyVersion> version = store_.Active();
  return version && version->engine->Offers(call);
}

int64_t Decider::NowUnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

engine::Decision Decider::Decide(const engine::CallContext& call, FrontDoor front_door,
                                 std::string* traceparent_out) const {
  auto start = std::chrono::steady_clock::now();
  telemetry::Span span;
  if (traces_) {
    span = telemetry::StartSpan("aegis.decide", telemetry::ParseTraceparent(call.traceparent),
                                NowUnixNanos(), sample_ratio_);
    if (traceparent_out) *traceparent_out = telemetry::FormatTraceparent(span.context);
  }
  // One load: the whole decision uses this version, whatever reloads happen meanwhile.
  std::shared_ptr<const PolicyVersion> version = store_.Active();
  engine::Decision d = version->engine->Decide(call);
  // A call reported after it ran (record_only) opens no approval: there is nothing to approve.
  if (approvals_ && d.outcome == policy::Effect::kApprovalNeeded && !call.record_only) {
    approvals_->Attach(d, call);
  }
  // Stage 10, record. A decision the trail cannot take is refused (fail closed): nothing
  // happens that is not recorded.
  audit::Record record;
  if (audit_) {
    record = AuditRecord(d, call, front_door);
    if (traces_) record.trace_id = telemetry::HexId(span.context.trace_id);
  }
  if (audit_ && !audit_->Append(std::move(record))) {
    d.outcome = policy::Effect::kDeny;
    d.reasons.insert(d.reasons.begin(), engine::Reason{engine::reason::kAuditUnavailable, nullptr,
                                                       "the audit trail cannot take the record"});
  }
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::steady_clock::now() - start)
                   .count();
  // Only names the policy declares become labels; anything else a caller sent is "_unknown".
  const policy::CompiledPolicy& p = *d.policy;
  // A tenant the bundle says nothing about may still reach bundle-wide agents; its name is the
  // caller's, so it is not a label either.
  bool tenant_known = d.tenant.empty() || p.FindScope(d.tenant) != nullptr;
  bool agent_known = p.FindAgent(d.tenant, d.agent) != nullptr;
  bool tool_known = agent_known && !d.tool.empty() && p.FindTool(d.tenant, d.tool) != nullptr;
  Metrics::Subject subject{agent_known && tenant_known ? std::string_view(d.tenant) : "_unknown",
                           agent_known ? std::string_view(d.agent) : "_unknown",
                           tool_known ? std::string_view(d.tool) : "_unknown"};
  metrics_.RecordDecision(static_cast<int>(front_door), d.outcome, d.enforced(), subject, nanos);
  if (traces_ && span.context.sampled) {
    span.end_unix_nanos = NowUnixNanos();
    auto& a = span.attributes;
    a.strings = {{"aegis.decision_id", std::string(d.id_view())},
                 {"aegis.tenant", d.tenant},
                 {"aegis.agent", d.agent},
                 {"aegis.tool", d.tool},
                 {"aegis.action", d.action},
                 {"aegis.decision", std::string(policy::EffectName(d.outcome))},
                 {"aegis.effective_decision", std::string(policy::EffectName(d.effective()))},
                 {"aegis.reason", d.reasons.empty() ? "" : std::string(d.reasons.front().code)},
                 {"aegis.rule", d.deciding_rule ? d.deciding_rule->id : ""},
                 {"aegis.policy_version", d.policy ? d.policy->version : ""},
                 {"aegis.front_door", std::string(FrontDoorName(front_door))}};
    a.doubles = {{"aegis.cost_usd", static_cast<double>(d.cost) / 1e6}};
    a.bools = {{"aegis.enforced", d.enforced()}};
    if (!d.approval_id.empty()) a.strings.emplace_back("aegis.approval_id", d.approval_id);
    traces_->Export(std::move(span));
  }
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
