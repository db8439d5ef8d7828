// Rate limits and budgets (DESIGN.md section 3, stage 7): the interface the engine will reach
// them through, and what one call asks of them.
//
// A call brings every limit that applies to it (agent, tenant, agent×tool, a rule's) as keyed
// rate specs and budget specs, and its estimated cost. Admit() checks all of them and, only if
// every one admits, consumes all of them, in one atomic step: if one refuses, none is charged.
// The cost is reserved under the decision id; Settle() later replaces the estimate with the
// actual cost (refund or overage). A reservation never settled stays charged at its estimate.
//
// Money is integer micro-dollars; time is Unix nanoseconds, passed in (no clock inside), so
// window rollover is testable.
#ifndef AEGIS_LIMITS_LIMITS_H_
#define AEGIS_LIMITS_LIMITS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace aegis::limits {

using Micros = int64_t;

// GCRA: `per_second` sustained, `burst` calls at once.
struct RateSpec {
  double per_second = 1;
  int64_t burst = 1;
};

// A budget window: a UTC day, a UTC calendar month, or a fixed duration since the epoch.
struct Window {
  enum class Kind { kDay, kMonth, kDuration };
  Kind kind = Kind::kDay;
  int64_t duration_nanos = 0;  // kDuration only

  // [start, end) of the window holding `now`.
  int64_t Start(int64_t now_unix_nanos) const;
  int64_t End(int64_t now_unix_nanos) const;
  // "day", "month", or the duration in seconds ("3600s"): names the window in spend reports
  // and, with the budget's key, identifies its counter.
  std::string Label() const;

  bool operator==(const Window&) const = default;
};

struct BudgetSpec {
  Micros limit = 0;
  Window window;
};

struct RateLimit {
  std::string key;  // e.g. "agent/acme/finance-agent"
  RateSpec spec;
};

// A budget is identified by its key and its window: one key may carry a daily and a monthly
// budget, each with its own counter.
struct Budget {
  std::string key;
  BudgetSpec spec;
};

// The name of a budget's counter: its key and window label ("agent/acme/a@day").
std::string CounterId(const Budget& b);

// What one call asks of the limits.
struct Charge {
  std::vector<RateLimit> rates;
  std::vector<Budget> budgets;
  Micros cost = 0;             // estimate to reserve on every budget; >= 0
  std::string reservation_id;  // the decision id; empty: nothing to settle later
  std::string owner;           // the tenant; Settle may require the same
  int64_t now_unix_nanos = 0;
};

struct Outcome {
  // kUnavailable: the shared store could not be asked and its fail mode is fail_closed.
  enum class Result { kAdmitted, kRateLimited, kBudgetExceeded, kUnavailable };
  Result result = Result::kAdmitted;
  // The shared store could not be asked and this answer came from the local fallback
  // (fail_open): front doors mark the decision, metrics count it.
  bool fail_open = false;
  std::string key;                   // the limit that refused
  int64_t retry_after_nanos = 0;     // kRateLimited: when the call would be admitted
  int64_t window_reset_unix_nanos = 0;  // kBudgetExceeded: when the window rolls over
  Micros remaining = 0;              // kBudgetExceeded: what is left in that window
};

// One budget key's state, for spend reports.
struct SpendRow {
  std::string key;
  std::string window;  // Window::Label()
  int64_t window_start_unix_nanos = 0;
  Micros spent = 0;  // settled plus reserved
  Micros limit = 0;
};

// The parts of a limit key as the engine builds them: "agent/<tenant>/<agent>",
// "agent_tool/<tenant>/<agent>/<tool>", "tenant/<tenant>", "rule/<tenant>/<rule>/<agent>".
// Parts a key lacks stay empty.
struct KeyParts {
  std::string_view scope, tenant, agent, tool, rule;
};
KeyParts SplitKey(std::string_view key);

// Where limit state lives: in process (MemoryLimitStore) or shared (RedisLimitStore).
class LimitStore {
 public:
  virtual ~LimitStore() = default;

  // Checks every rate limit and budget of `charge`; if all admit, consumes all of them and
  // reserves the cost under `charge.reservation_id`. Atomic with respect to other calls.
  virtual Outcome Admit(const Charge& charge) = 0;

  // Replaces a reservation's estimate with `actual` (refunding or charging the difference in
  // the window it was reserved in). NotFound for an unknown or expired id, or one whose owner
  // is not `owner` (when `owner` is not empty); FailedPrecondition when it was settled already;
  // InvalidArgument for a negative amount; Unavailable when the shared store cannot be asked.
  virtual common::Status Settle(std::string_view reservation_id, Micros actual,
                                int64_t now_unix_nanos, std::string_view owner = {}) = 0;

  // Current-window spend of every budget key starting with `prefix`, sorted by key and window.
  // Unavailable when the shared store cannot be asked.
  virtual common::StatusOr<std::vector<SpendRow>> Spend(std::string_view prefix,
                                                        int64_t now_unix_nanos) = 0;

  // Single-use ids (override tokens' jti): marks `id` used until `expires_unix_nanos`. True
  // the first time, false when it is in use already; of concurrent calls with one id exactly
  // one gets true. Unavailable when the shared store cannot be asked (fail_closed).
  virtual common::StatusOr<bool> ConsumeOnce(std::string_view id, int64_t expires_unix_nanos,
                                             int64_t now_unix_nanos) = 0;
  // Makes a consumed id usable again (the call it was consumed for did not happen).
  virtual void Unconsume(std::string_view id) = 0;

  // Appends the store's own Prometheus series (connection state, errors, fail-open answers).
  virtual void AppendMetrics(std::string& /*out*/) const {}
};

}  // namespace aegis::limits

#endif  // AEGIS_LIMITS_LIMITS_H_
