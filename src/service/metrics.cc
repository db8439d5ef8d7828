#include "service/metrics.h"

#include <algorithm>
#include <cstdio>

#include "common/strings.h"
#include "policy/compiler.h"
#include "service/decider.h"

namespace aegis::service {

using common::StrCat;

void Metrics::RecordDecision(int front_door, policy::Effect effect, bool enforced,
                             int64_t nanos) {
  if (front_door < 0 || front_door >= kFrontDoors) return;
  int e = static_cast<int>(effect);
  decisions_[front_door][e * 2 + (enforced ? 1 : 0)].fetch_add(1, std::memory_order_relaxed);
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
  out += "# HELP aegis_decisions_total Decisions by front door, decision and enforcement.\n";
  out += "# TYPE aegis_decisions_total counter\n";
  for (int f = 0; f < kFrontDoors; ++f) {
    std::string_view door = FrontDoorName(static_cast<FrontDoor>(f));
    for (int e = 0; e < kEffects; ++e) {
      for (int enforced = 0; enforced < 2; ++enforced) {
        int64_t n = decisions_[f][e * 2 + enforced].load(std::memory_order_relaxed);
        if (n == 0) continue;
        out += StrCat("aegis_decisions_total{front_door=\"", door, "\",decision=\"",
                      policy::EffectName(static_cast<policy::Effect>(e)), "\",enforced=\"",
                      enforced ? "true" : "false", "\"} ", n, "\n");
      }
    }
  }
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
  return out;
}

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
