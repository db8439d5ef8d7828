#include "engine/policy_tests.h"

#include <set>

#include "common/strings.h"

namespace aegis::engine {

using common::StrCat;

int PolicyTestReport::passed() const {
  int n = 0;
  for (const auto& r : results) n += r.passed ? 1 : 0;
  return n;
}

int PolicyTestReport::failed() const { return static_cast<int>(results.size()) - passed(); }

PolicyTestReport RunPolicyTests(const Engine& engine, int64_t now_unix_nanos) {
  PolicyTestReport report;
  std::set<const policy::Rule*> exercised;
  for (const auto& test : engine.policy()->tests) {
    PolicyTestResult result{&test, false, {}};
    if (!test.expect_reason.empty() && !reason::IsKnownCode(test.expect_reason)) {
      result.failure = StrCat("expects reason \"", test.expect_reason,
                              "\", which is not a reason code (see docs/decide-api.md)");
      report.results.push_back(std::move(result));
      continue;
    }
    CallParseOptions options;
    options.trusted = true;
    auto call = CallFromJson(test.input, now_unix_nanos, options);
    if (!call.ok()) {
      result.failure = StrCat("input is not a valid call: ", call.status().message());
      report.results.push_back(std::move(result));
      continue;
    }
    DecideTrace trace;
    Decision d = engine.Decide(*call, &trace);
    exercised.insert(trace.matched.begin(), trace.matched.end());
    std::string got = StrCat(policy::EffectName(d.outcome));
    if (d.deciding_rule) got += StrCat(" by rule ", d.deciding_rule->id);
    if (!d.reasons.empty()) got += StrCat(" (", d.reasons.front().code, ")");
    if (d.outcome != test.expect_decision) {
      result.failure = StrCat("expected ", policy::EffectName(test.expect_decision), ", got ", got);
    } else if (!test.expect_rule.empty() &&
               (!d.deciding_rule || d.deciding_rule->id != test.expect_rule)) {
      result.failure = StrCat("expected rule ", test.expect_rule, ", got ", got);
    } else if (!test.expect_reason.empty() &&
               (d.reasons.empty() || d.reasons.front().code != test.expect_reason)) {
      result.failure = StrCat("expected reason ", test.expect_reason, ", got ", got);
    } else {
      result.passed = true;
    }
    report.results.push_back(std::move(result));
  }
  for (const auto& r : engine.policy()->rules) {
    if (!exercised.count(r.get())) report.unexercised.push_back(r.get());
  }
  return report;
}

}  // namespace aegis::engine
