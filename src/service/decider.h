// Decider: the one entry every front door calls. It takes the active policy version, decides,
// and records the decision in the metrics; front doors only translate to and from their
// protocol (DESIGN.md section 2).
#ifndef AEGIS_SERVICE_DECIDER_H_
#define AEGIS_SERVICE_DECIDER_H_

#include <string_view>

#include "engine/call_context.h"
#include "engine/decision.h"
#include "service/metrics.h"
#include "service/policy_store.h"

namespace aegis::service {

// Which front door a decision came through, for metrics and logs.
enum class FrontDoor { kDecideApi, kAuthzHttp, kExtAuthzGrpc, kCli };
std::string_view FrontDoorName(FrontDoor f);

class Decider {
 public:
  Decider(const PolicyStore& store, Metrics& metrics) : store_(store), metrics_(metrics) {}

  // Decides `call` against the policy version active at the time of the call; the decision
  // names that version. Thread-safe.
  engine::Decision Decide(const engine::CallContext& call, FrontDoor front_door) const;

  // Wall-clock time for stamping calls (CallContext::now_unix_nanos).
  static int64_t NowUnixNanos();

  // The HTTP status a decision maps to (DESIGN.md section 5): 200 for allow and sanitize,
  // 429 for rate_limited, 402 for budget_exceeded, 403 for any other deny and approval_needed.
  static int HttpStatus(const engine::Decision& d);

  Metrics& metrics() const { return metrics_; }
  const PolicyStore& store() const { return store_; }

 private:
  const PolicyStore& store_;
  Metrics& metrics_;
};

}  // namespace aegis::service

#endif  // AEGIS_SERVICE_DECIDER_H_
