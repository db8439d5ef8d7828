#include "service/metrics.h"

#include <algorithm>
#include <cstdio>

#include "common/strings.h"
#include "policy/compiler.h"
#include "service/decider.h"

namespace aegis::service {

using common::StrCat;

void Metrics::RecordDecision(int front_door, policy::Effect effect, bool enforced,
                             const Subject& subject, int64_t nanos) {
  if (front_door < 0 || front_door >= kFrontDoors) return;
  // The series key is its rendered label set; built in a per-thread buffer.
  thread_local std::string key;
  auto build = [&](std::string_view agent) {
    key.clear();
    key += "front_door=\"";
    key += FrontDoorName(static_cast<FrontDoor>(front_door));
    key += "\",decision=\"";
    key += policy::EffectName(effect);
    key += enforced ? "\",enforced=\"true\",tenant=\"" : "\",enforced=\"false\",tenant=\"";
    key += subject.tenant;
    key += "\",agent=\"";
    key += agent;
    key += "\",tool=\"";
    key += subject.tool;
    key += "\"";
  };
  build(subject.agent);
  size_t h = std::hash<std::string>{}(key);
  SeriesShard* shard = &decisions_[h % kSeriesShards];
  {
    std::unique_lock<std::mutex> lock(shard->mu);
    auto it = shard->series.find(key);
    if (it == shard->series.end()) {
      if (series_count_.load(std::memory_order_relaxed) >= kMaxSeries) {
        lock.unlock();
        build("_other");
        shard = &decisions_[std::hash<std::string>{}(key) % kSeriesShards];
        lock = std::unique_lock<std::mutex>(shard->mu);
        it = shard->series.find(key);
      }
      if (it == shard->series.end()) {
        auto series = std::make_unique<DecisionSeries>();
        series->labels = key;
        it = shard->series.emplace(key, std::move(series)).first;
        series_count_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    it->second->count.fetch_add(1, std::memory_order_relaxed);
  }
  int e = static_cast<int>(effect);
  (void)e;
  double seconds = static_cast<double>(nanos) / 1e9;
  size_t bucket = 0;
  while (bucket < kLatencyBuckets.size() && seconds > kLatencyBuckets[bucket]) ++bucket;
  latency_buckets_[front_door][bucket].fetch_add(1, std::memory_order_relaxed);
  latency_sum_nanos_[front_door].fetch_add(nanos, std::memory_order_relaxed);
}

void Metrics::RecordBadRequest(int front_door) {
  if (front_door < 0 || front_door >= kFrontDoors) return;
  bad_requests_[front_door].fetch_add(1, std::memory_order_relaxed);
}

void Metrics::RecordReload(bool ok) {
  (ok ? reloads_ok_ : reloads_failed_).fetch_add(1, std::memory_order_relaxed);
}

namespace {
std::string FormatSeconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}
}  // namespace

std::string Metrics::Render(const std::string& extra) const {
  std::string out;
  out += "# HELP aegis_decisions_total Decisions by front door, decision, enforcement, tenant, "
         "agent and tool.\n";
  out += "# TYPE aegis_decisions_total counter\n";
  std::vector<std::pair<std::string, int64_t>> rows;
  for (const SeriesShard& shard : decisions_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    for (const auto& [key, series] : shard.series) {
      rows.emplace_back(series->labels, series->count.load(std::memory_order_relaxed));
    }
  }
  std::sort(rows.begin(), rows.end());
  for (const auto& [labels, n] : rows) out += StrCat("aegis_decisions_total{", labels, "} ", n, "\n");
  out += "# HELP aegis_bad_requests_total Requests refused before a decision (malformed, too "
         "large, unknown route).\n";
  out += "# TYPE aegis_bad_requests_total counter\n";
  for (int f = 0; f < kFrontDoors; ++f) {
    out += StrCat("aegis_bad_requests_total{front_door=\"",
                  FrontDoorName(static_cast<FrontDoor>(f)), "\"} ",
                  bad_requests_[f].load(std::memory_order_relaxed), "\n");
  }
  out += "# HELP aegis_decision_duration_seconds Time the engine took per decision.\n";
  out += "# TYPE aegis_decision_duration_seconds histogram\n";
  for (int f = 0; f < kFrontDoors; ++f) {
    std::string_view door = FrontDoorName(static_cast<FrontDoor>(f));
    int64_t cumulative = 0;
    for (size_t b = 0; b <= kLatencyBuckets.size(); ++b) {
      cumulative += latency_buckets_[f][b].load(std::memory_order_relaxed);
      std::string le = b < kLatencyBuckets.size() ? FormatSeconds(kLatencyBuckets[b]) : "+Inf";
      out += StrCat("aegis_decision_duration_seconds_bucket{front_door=\"", door, "\",le=\"", le,
                    "\"} ", cumulative, "\n");
    }
    char sum[64];
    std::snprintf(sum, sizeof sum, "%.9f",
                  static_cast<double>(latency_sum_nanos_[f].load(std::memory_order_relaxed)) /
                      1e9);
    out += StrCat("aegis_decision_duration_seconds_sum{front_door=\"", door, "\"} ", sum, "\n");
    out += StrCat("aegis_decision_duration_seconds_count{front_door=\"", door, "\"} ",
                  cumulative, "\n");
  }
  out += "# HELP aegis_policy_reloads_total Policy reloads by result.\n";
  out += "# TYPE aegis_policy_reloads_total counter\n";
  out += StrCat("aegis_policy_reloads_total{result=\"ok\"} ",
                reloads_ok_.load(std::memory_order_relaxed), "\n");
  out += StrCat("aegis_policy_reloads_total{result=\"error\"} ",
                reloads_failed_.load(std::memory_order_relaxed), "\n");
  out += extra;
  for (const Collector& collect : collectors_) collect(out);
  return out;
}

void Metrics::AddCollector(Collector collector) { collectors_.push_back(std::move(collector)); }

void AppendSpendMetrics(const std::vector<limits::SpendRow>& rows, std::string& out) {
  if (rows.empty()) return;
  // Label values are policy names (letters, digits, '.', '_', '-'), but escape anyway.
  auto label = [](std::string_view v) {
    std::string e;
    for (char c : v) {
      if (c == '\\' || c == '"') e += '\\';
      if (c == '\n') {
        e += "\\n";
        continue;
      }
      e += c;
    }
    return e;
  };
  struct Series {
    const char* name;
    const char* help;
    limits::Micros (*value)(const limits::SpendRow&);
  };
  static constexpr Series kSeries[] = {
      {"aegis_budget_spent_usd", "Spent (settled plus reserved) in the current window.",
       [](const limits::SpendRow& r) { return r.spent; }},
      {"aegis_budget_limit_usd", "The budget of the current window.",
       [](const limits::SpendRow& r) { return r.limit; }},
      {"aegis_budget_remaining_usd", "What is left of the budget in the current window.",
       [](const limits::SpendRow& r) { return std::max<limits::Micros>(r.limit - r.spent, 0); }},
  };
  for (const Series& s : kSeries) {
    out += StrCat("# HELP ", s.name, " ", s.help, "\n# TYPE ", s.name, " gauge\n");
    for (const auto& row : rows) {
      limits::KeyParts k = limits::SplitKey(row.key);
      out += StrCat(s.name, "{scope=\"", label(k.scope), "\",tenant=\"", label(k.tenant),
                    "\",agent=\"", label(k.agent), "\",tool=\"", label(k.tool), "\",rule=\"",
                    label(k.rule), "\",window=\"", label(row.window), "\"} ",
                    policy::FormatUsdMicros(s.value(row)), "\n");
    }
  }
}

}  // namespace aegis::service
