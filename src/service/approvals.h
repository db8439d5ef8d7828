// ApprovalService: what happens around an approval_needed decision (DESIGN.md section 6).
//
// An enforced approval_needed decision creates an approval for the exact call — or joins the
// one pending for the identical call — with the deciding rule's quorum, expiry and notifiers;
// the decision then carries its id. Approvers vote through the API or CLI; each resolution is
// notified. Polling an approved approval hands the agent its override token.
#ifndef AEGIS_SERVICE_APPROVALS_H_
#define AEGIS_SERVICE_APPROVALS_H_

#include <functional>
#include <memory>
#include <string>

#include "approvals/notify.h"
#include "approvals/store.h"
#include "engine/call_context.h"
#include "engine/decision.h"
#include "redact/redact.h"

namespace aegis::service {

class ApprovalService {
 public:
  using Log = std::function<void(std::string_view level, const std::string& message)>;
  // The notifiers of a rule (by id, for a tenant) in the active policy; resolutions go to them.
  using NotifiersOf =
      std::function<std::vector<std::string>(std::string_view rule_id, std::string_view tenant)>;
  // `notifier` may be null (no notifications configured).
  ApprovalService(std::unique_ptr<approvals::ApprovalStore> store, approvals::Notifier* notifier,
                  NotifiersOf notifiers_of, Log log);

  // For an enforced approval_needed decision: creates or joins the approval and sets
  // d.approval_id. When the store cannot be written the decision stays approval_needed without
  // an id (logged): the call is refused either way.
  void Attach(engine::Decision& d, const engine::CallContext& call);

  common::StatusOr<approvals::Approval> Get(std::string_view id, int64_t now_seconds);
  common::StatusOr<std::vector<approvals::Approval>> List(const approvals::ListFilter& filter,
                                                          int64_t now_seconds);
  // One approver's verdict; notifies when it resolves the approval.
  common::StatusOr<approvals::Approval> Vote(std::string_view id, const approvals::Vote& vote);

  // Prometheus: aegis_approvals_pending and the notifiers' series.
  void AppendMetrics(std::string& out);

  // What an approver sees of the call: tool, action and the parameters with every detector's
  // findings masked ([REDACTED:ssn]) — notifications never carry PII.
  std::string Summary(const engine::Decision& d, const common::Json& params) const;

 private:
  std::unique_ptr<approvals::ApprovalStore> store_;
  approvals::Notifier* notifier_;
  redact::Redactor redactor_;
  NotifiersOf notifiers_of_;
  Log log_;
};

}  // namespace aegis::service

#endif  // AEGIS_SERVICE_APPROVALS_H_
