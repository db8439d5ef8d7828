// Decider: the one entry every front door calls. It takes the active policy version, decides,
// and records the decision in the metrics; front doors only translate to and from their
// protocol (DESIGN.md section 2).
#ifndef AEGIS_SERVICE_DECIDER_H_
#define AEGIS_SERVICE_DECIDER_H_

#include <string_view>

#include "engine/call_context.h"
#include "engine/decision.h"
#include "audit/writer.h"
#include "redact/redact.h"
#include "service/approvals.h"
#include "service/metrics.h"
#include "service/policy_store.h"
#include "telemetry/exporter.h"

namespace aegis::service {

// Which front door a decision came through, for metrics and logs.
// kFailOpenReport: calls an SDK ran while Aegis was unreachable (fail_open), reported afterwards.
enum class FrontDoor { kDecideApi, kAuthzHttp, kExtAuthzGrpc, kCli, kProxy, kMcp, kFailOpenReport };
std::string_view FrontDoorName(FrontDoor f);

class Decider {
 public:
  // `approvals` (optional, not owned) records approval_needed decisions as approvals; `audit`
  // (optional, not owned) appends one record per decision to the audit trail.
  // `traces` (optional, not owned) exports one span per decision, sampled at `sample_ratio`
  // unless the caller's traceparent decides.
  Decider(const PolicyStore& store, Metrics& metrics, ApprovalService* approvals = nullptr,
          audit::Writer* audit = nullptr, telemetry::Exporter* traces = nullptr,
          double sample_ratio = 1.0);

  // Decides `call` against the policy version active at the time of the call; the decision
  // names that version, and for approval_needed the approval. `traceparent_out`, when given,
  // receives the decision span's traceparent (for the response). Thread-safe.
  engine::Decision Decide(const engine::CallContext& call, FrontDoor front_door,
                          std::string* traceparent_out = nullptr) const;

  // Whether the active policy could ever allow `call`'s agent its tool and action (for listing
  // tools: engine::Engine::Offers). Thread-safe; records nothing.
  bool Offers(const engine::CallContext& call) const;

  // Wall-clock time for stamping calls (CallContext::now_unix_nanos).
  static int64_t NowUnixNanos();

  // The HTTP status a decision maps to (DESIGN.md section 5): 200 for allow and sanitize,
  // 429 for rate_limited, 402 for budget_exceeded, 503 for limits_unavailable and
  // audit_unavailable, 403 for any other deny and approval_needed.
  static int HttpStatus(const engine::Decision& d);

  Metrics& metrics() const { return metrics_; }
  const PolicyStore& store() const { return store_; }
  ApprovalService* approvals() const { return approvals_; }
  audit::Writer* audit() const { return audit_; }
  telemetry::Exporter* traces() const { return traces_; }

  // The audit record of a decision: ids, subject, outcome, reasons, cost, and the parameters
  // with every detector's findings redacted plus the SHA-256 of the raw ones — never raw PII.
  audit::Record AuditRecord(const engine::Decision& d, const engine::CallContext& call,
                            FrontDoor front_door) const;

 private:
  const PolicyStore& store_;
  Metrics& metrics_;
  ApprovalService* approvals_;
  audit::Writer* audit_;
  telemetry::Exporter* traces_;
  double sample_ratio_;
  redact::Redactor redactor_;
};

}  // namespace aegis::service

#endif  // AEGIS_SERVICE_DECIDER_H_
