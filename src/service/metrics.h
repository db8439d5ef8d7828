// Metrics: the counters and histograms GET /metrics exposes in Prometheus text format.
// Updates are lock-free (relaxed atomics); rendering reads a consistent-enough snapshot.
#ifndef AEGIS_SERVICE_METRICS_H_
#define AEGIS_SERVICE_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <string>
#include <vector>

#include "limits/limits.h"
#include "policy/policy.h"

namespace aegis::service {

class Metrics {
 public:
  static constexpr int kFrontDoors = 7;  // FrontDoor values
  static constexpr int kEffects = 4;     // policy::Effect values
  // Upper bounds of the latency buckets, in seconds.
  static constexpr std::array<double, 12> kLatencyBuckets = {
      1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 1e-1};

  // Who a decision was about, for the per-agent series. Names must be ones the policy declares
  // (the Decider passes "_unknown" for others): labels never carry what a caller made up.
  struct Subject {
    std::string_view tenant, agent, tool;
  };
  // One decision: its front door (FrontDoor as int), its effect, whether enforced, its subject,
  // and how long the decision took.
  void RecordDecision(int front_door, policy::Effect effect, bool enforced, const Subject& subject,
                      int64_t nanos);
  // A request refused before any decision (malformed, too large, unknown route...).
  void RecordBadRequest(int front_door);
  void RecordReload(bool ok);

  // A component that renders its own series (the audit writer and sinks, the span exporter,
  // the approvals): called by Render to append Prometheus text to `out`.
  using Collector = std::function<void(std::string& out)>;
  // Adds a collector. Only before the service starts serving (Render reads the list unlocked);
  // whatever a collector reaches must outlive this Metrics' last Render.
  void AddCollector(Collector collector);

  // Prometheus text exposition (version 0.0.4). `extra` is appended as is (gauges the caller
  // owns, such as the active policy version), then each collector's series.
  std::string Render(const std::string& extra = "") const;

 private:
  // Decisions by front door, effect, enforcement, tenant, agent and tool: series are created on
  // first use, in shards each with its own lock. At most kMaxSeries; further combinations are
  // counted under agent="_other".
  static constexpr size_t kMaxSeries = 10000;
  static constexpr size_t kSeriesShards = 16;
  struct DecisionSeries {
    std::string labels;  // rendered label set, e.g. front_door="..",decision="..",...
    std::atomic<int64_t> count{0};
  };
  struct SeriesShard {
    mutable std::mutex mu;
    std::unordered_map<std::string, std::unique_ptr<DecisionSeries>> series;
  };
  std::array<SeriesShard, kSeriesShards> decisions_{};
  std::atomic<size_t> series_count_{0};
  std::array<std::atomic<int64_t>, kFrontDoors> bad_requests_{};
  std::array<std::array<std::atomic<int64_t>, kLatencyBuckets.size() + 1>, kFrontDoors>
      latency_buckets_{};
  std::array<std::atomic<int64_t>, kFrontDoors> latency_sum_nanos_{};
  std::atomic<int64_t> reloads_ok_{0};
  std::atomic<int64_t> reloads_failed_{0};
  std::vector<Collector> collectors_;
};

// Appends gauges of spend, limit and remaining budget per budget key and window
// (aegis_budget_spent_usd, aegis_budget_limit_usd, aegis_budget_remaining_usd), labelled with
// scope, tenant, agent, tool, rule and window.
void AppendSpendMetrics(const std::vector<limits::SpendRow>& rows, std::string& out);

}  // namespace aegis::service

#endif  // AEGIS_SERVICE_METRICS_H_
