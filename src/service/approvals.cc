#include "service/approvals.h"

#include <chrono>

#include "common/strings.h"
#include "engine/call_digest.h"

namespace aegis::service {

using common::Json;
using common::StrCat;

namespace {

int64_t NowSeconds(const engine::CallContext& call) { return call.now_unix_nanos / 1'000'000'000; }

}  // namespace

ApprovalService::ApprovalService(std::unique_ptr<approvals::ApprovalStore> store,
                                 approvals::Notifier* notifier, NotifiersOf notifiers_of, Log log)
    : store_(std::move(store)),
      notifier_(notifier),
      redactor_(*redact::Redactor::Create({"all"}, redact::Style::kMask, "")),
      notifiers_of_(std::move(notifiers_of)),
      log_(std::move(log)) {}

std::string ApprovalService::Summary(const engine::Decision& d, const Json& params) const {
  Json redacted = params;
  redactor_.RedactJson(redacted, {});
  Json s = Json::EmptyObject();
  s.Set("tool", Json::String(d.tool));
  s.Set("action", Json::String(d.action));
  s.Set("params", std::move(redacted));
  return s.Canonical();
}

void ApprovalService::Attach(engine::Decision& d, const engine::CallContext& call) {
  if (d.outcome != policy::Effect::kApprovalNeeded || !d.enforced() || !d.deciding_rule) return;
  const policy::Rule& rule = *d.deciding_rule;
  approvals::Approval a;
  a.id = approvals::NewApprovalId();
  a.tenant = d.tenant;
  a.agent = d.agent;
  a.tool = d.tool;
  a.action = d.action;
  a.call_digest = engine::CallDigest(d.tenant, d.agent, d.tool, d.action, call.params);
  a.rule_id = rule.id;
  a.message = rule.message;
  a.summary_json = Summary(d, call.params);
  a.quorum = rule.approval.quorum;
  int64_t now = NowSeconds(call);
  a.created_at = now;
  a.expires_at = now + rule.approval.ttl_seconds;
  bool joined = false;
  auto stored = store_->CreateOrJoin(a, now, &joined);
  if (!stored.ok()) {
    log_("error", StrCat("approvals: cannot record the approval for decision ", d.id_view(),
                         ": ", stored.status().message()));
    return;
  }
  d.approval_id = stored->id;
  if (!joined && notifier_ && !rule.approval.notify.empty()) {
    notifier_->Notify(rule.approval.notify, *stored, approvals::Event::kCreated);
  }
}

void ApprovalService::AppendMetrics(std::string& out) {
  approvals::ListFilter pending;
  pending.state = approvals::State::kPending;
  pending.limit = 100000;
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  if (auto list = store_->List(pending, now); list.ok()) {
    out += "# HELP aegis_approvals_pending Approvals waiting for approvers.\n"
           "# TYPE aegis_approvals_pending gauge\n";
    out += StrCat("aegis_approvals_pending ", list->size(), "\n");
  }
  if (notifier_) notifier_->AppendMetrics(out);
}

common::StatusOr<approvals::Approval> ApprovalService::Get(std::string_view id,
                                                           int64_t now_seconds) {
  return store_->Get(id, now_seconds);
}

common::StatusOr<std::vector<approvals::Approval>> ApprovalService::List(
    const approvals::ListFilter& filter, int64_t now_seconds) {
  return store_->List(filter, now_seconds);
}

common::StatusOr<approvals::Approval> ApprovalService::Vote(std::string_view id,
                                                            const approvals::Vote& vote) {
  auto before = store_->Get(id, vote.at);
  if (!before.ok()) return before.status();
  auto after = store_->Vote(id, vote, vote.at);
  if (!after.ok()) {
    log_("warn", StrCat("approvals: ", vote.approver, " could not ",
                        vote.approve ? "approve " : "deny ", id, ": ", after.status().message()));
    return after;
  }
  log_("info", StrCat("approvals: ", vote.approver, vote.approve ? " approved " : " denied ", id,
                      " (", approvals::StateName(after->state), ")"));
  if (before->state == approvals::State::kPending &&
      after->state != approvals::State::kPending && notifier_) {
    // The resolution goes to the notifiers of the rule as the active policy has it now.
    approvals::Event e = after->state == approvals::State::kApproved ? approvals::Event::kApproved
                                                                     : approvals::Event::kDenied;
    std::vector<std::string> names = notifiers_of_(after->rule_id, after->tenant);
    if (!names.empty()) notifier_->Notify(names, *after, e);
  }
  return after;
}

}  // namespace aegis::service
