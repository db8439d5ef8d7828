#include "policy/compiler.h"

#include <algorithm>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aegis::policy {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr std::string_view kHeader = R"(apiVersion: aegis/v1
kind: Policy
tools:
  stripe:
    hosts: [api.stripe.com]
    actions:
      create_payment: {method: POST, path: /v1/payment_intents, cost_usd: 0.002}
      refund: {method: POST, path: /v1/refunds}
  github: {}
agents:
  finance-agent: {tools: [stripe]}
  ops-agent: {tools: [github]}
)";

CompileOutput CompileOne(std::string_view text) {
  return CompileFiles({{"p.yaml", std::string(text)}}, "test");
}

std::vector<std::string> Messages(const CompileOutput& out) {
  std::vector<std::string> lines;
  for (const auto& d : out.diagnostics.Sorted()) lines.push_back(d.ToString());
  return lines;
}

TEST(CompilerTest, CompilesAValidBundle) {
  auto out = CompileOne(std::string(kHeader) + R"(rules:
  - id: big
    match: {tools: [stripe], actions: [create_payment]}
    if: params.amount > 5000
    effect: approval_needed
  - id: ok
    match: {agents: [finance-agent]}
    effect: allow
)");
  ASSERT_TRUE(out.policy) << testing::PrintToString(Messages(out));
  EXPECT_EQ(out.policy->rules.size(), 2u);
  EXPECT_EQ(out.policy->version.size(), 16u);
  EXPECT_EQ(out.policy->name, "test");
  const Tool* stripe = out.policy->FindTool("", "stripe");
  ASSERT_NE(stripe, nullptr);
  EXPECT_EQ(*stripe->FindAction("create_payment")->cost, 2000);
}

TEST(CompilerTest, ReportsEveryMistakeAtOnceWithLocations) {
  auto out = CompileOne(std::string(kHeader) + R"(rules:
  - id: r1
    match: {tools: [stripe]}
    efect: deny
  - id: r1
    match: {tools: [paypal], agents: [nobody]}
    effect: allow
  - id: r3
    match: {tools: [stripe], actions: [teleport]}
    if: params.amount >
    effect: deny
  - id: r4
    match: {tools: [stripe]}
    if: agent > 5
    effect: maybe
)");
  EXPECT_FALSE(out.policy);
  auto lines = Messages(out);
  EXPECT_THAT(lines, testing::Contains(
                         "p.yaml:16:5: error[unknown-key]: unknown key \"efect\" in a rule; did "
                         "you mean \"effect\"?"));
  EXPECT_THAT(lines, testing::Contains("p.yaml:14:5: error[missing-key]: rule r1 needs an effect"));
  EXPECT_THAT(lines, testing::Contains(HasSubstr("p.yaml:17:9: error[duplicate-id]: rule id \"r1\" "
                                                 "is already used at p.yaml:14:9")));
  EXPECT_THAT(lines, testing::Contains(HasSubstr("p.yaml:18:21: error[unknown-tool]")));
  EXPECT_THAT(lines, testing::Contains(HasSubstr("p.yaml:18:39: error[unknown-agent]")));
  EXPECT_THAT(lines, testing::Contains(HasSubstr("p.yaml:21:40: error[unknown-action]")));
  EXPECT_THAT(lines, testing::Contains(HasSubstr("p.yaml:22:24: error[expr-syntax]: rule r3: unexpected end of input")));
  EXPECT_THAT(lines, testing::Contains(HasSubstr("p.yaml:26:15: error[expr-type]: rule r4: no matching overload for '>' applied to (string, int)")));
  EXPECT_THAT(lines, testing::Contains(HasSubstr("p.yaml:27:13: error[wrong-value]: effect must")));
  EXPECT_GE(out.diagnostics.error_count(), 9);
}

TEST(CompilerTest, InvalidRegexIsACompileError) {
  auto out = CompileOne(std::string(kHeader) + R"(rules:
  - id: r
    match: {tools: [stripe]}
    if: params.note.matches("(unclosed")
    effect: deny
)");
  EXPECT_FALSE(out.policy);
  EXPECT_THAT(Messages(out), testing::Contains(HasSubstr("error[expr-regex]")));
}

TEST(CompilerTest, NonBoolConditionIsRefused) {
  auto out = CompileOne(std::string(kHeader) + R"(rules:
  - id: r
    match: {tools: [stripe]}
    if: size(agent) + 1
    effect: deny
)");
  EXPECT_FALSE(out.policy);
  EXPECT_THAT(Messages(out), testing::Contains(HasSubstr("condition has type int")));
}

TEST(CompilerTest, FindsRulesOutsideEveryAgentsScope) {
  auto out = CompileOne(std::string(kHeader) + R"(rules:
  - id: never
    match: {agents: [finance-agent], tools: [github]}
    effect: allow
)");
  EXPECT_FALSE(out.policy);
  EXPECT_THAT(Messages(out), ElementsAre(HasSubstr("p.yaml:14:5: error[unreachable-rule]: rule "
                                                   "never can never apply")));
}

TEST(CompilerTest, FindsRulesOutsideEveryAgentsDomains) {
  auto out = CompileOne(R"(apiVersion: aegis/v1
kind: Policy
tools:
  ehr: {hosts: [ehr.internal]}
agents:
  research: {tools: [ehr], allowed_domains: ["*.research.internal"]}
rules:
  - {id: never, match: {agents: [research], tools: [ehr]}, effect: allow}
)");
  EXPECT_FALSE(out.policy);
  EXPECT_THAT(Messages(out), ElementsAre(HasSubstr("error[unreachable-rule]: rule never can "
                                                   "never apply")));
}

TEST(CompilerTest, FindsRulesShadowedByUnconditionalDeny) {
  auto out = CompileOne(std::string(kHeader) + R"(rules:
  - id: no-refunds
    match: {tools: [stripe]}
    effect: deny
  - id: allow-refunds
    match: {tools: [stripe], actions: [refund]}
    if: params.amount < 10
    effect: allow
)");
  EXPECT_FALSE(out.policy);
  EXPECT_THAT(Messages(out),
              ElementsAre(HasSubstr("rule allow-refunds can never take effect: unconditional deny "
                                    "rule no-refunds")));
}

TEST(CompilerTest, ConditionalDenyDoesNotShadow) {
  auto out = CompileOne(std::string(kHeader) + R"(rules:
  - id: no-big-refunds
    match: {tools: [stripe]}
    if: params.amount > 100
    effect: deny
  - id: allow-refunds
    match: {tools: [stripe], actions: [refund]}
    effect: allow
)");
  EXPECT_TRUE(out.policy) << testing::PrintToString(Messages(out));
}

TEST(CompilerTest, TenantFilesCannotTargetOtherTenants) {
  auto out = CompileFiles({{"base.yaml", std::string(kHeader)},
                           {"acme.yaml", R"(apiVersion: aegis/v1
kind: Policy
metadata: {tenant: acme}
rules:
  - id: acme-all
    match: {tenants: [globex], tools: [stripe]}
    effect: allow
)"}},
                          "t");
  EXPECT_FALSE(out.policy);
  EXPECT_THAT(Messages(out), testing::Contains(HasSubstr("acme.yaml:6:22: error[tenant-scope]")));
}

TEST(CompilerTest, VersionIsAHashOfCanonicalContent) {
  std::string a = std::string(kHeader) + "rules:\n  - {id: r, match: {tools: [stripe]}, effect: allow}\n";
  std::string b = std::string(kHeader) +
                  "rules:\n  - id: r          # same rule, other formatting\n    effect: allow\n"
                  "    match:\n      tools: [stripe]\n";
  std::string c = std::string(kHeader) + "rules:\n  - {id: r, match: {tools: [stripe]}, effect: deny}\n";
  auto va = CompileOne(a), vb = CompileOne(b), vc = CompileOne(c);
  ASSERT_TRUE(va.policy && vb.policy && vc.policy);
  EXPECT_EQ(va.policy->version, vb.policy->version);
  EXPECT_NE(va.policy->version, vc.policy->version);
}

TEST(CompilerTest, RefusesBadScalarsInTheCatalog) {
  auto out = CompileOne(R"(apiVersion: aegis/v1
kind: Policy
tools:
  t:
    hosts: ["user@evil.com", "0x7f.1"]
    actions:
      a: {method: FETCH, path: "v1/x", cost_usd: -1}
agents:
  x: {tools: [t], burst: 0, max_requests_per_second: "5", max_daily_budget_usd: 1.0000001}
)");
  EXPECT_FALSE(out.policy);
  auto lines = Messages(out);
  for (const char* code : {"invalid-host", "wrong-value", "invalid-path", "invalid-amount",
                           "wrong-type"}) {
    EXPECT_THAT(lines, testing::Contains(HasSubstr(std::string("error[") + code + "]"))) << code;
  }
  EXPECT_GE(out.diagnostics.error_count(), 8);
}

TEST(CompilerTest, UsdParsingIsExact) {
  Micros m;
  ASSERT_TRUE(ParseUsdMicros("0.002", m));
  EXPECT_EQ(m, 2000);
  ASSERT_TRUE(ParseUsdMicros("5000", m));
  EXPECT_EQ(m, 5'000'000'000);
  EXPECT_FALSE(ParseUsdMicros("-1", m));
  EXPECT_FALSE(ParseUsdMicros("1.0000001", m));
  EXPECT_FALSE(ParseUsdMicros("1e3", m));
  EXPECT_FALSE(ParseUsdMicros("99999999999999", m));
  EXPECT_FALSE(ParseUsdMicros("1.", m));
}

TEST(CompilerTest, IndexBucketsRulesByToolAndAction) {
  auto out = CompileOne(std::string(kHeader) + R"(rules:
  - id: pay
    match: {tools: [stripe], actions: [create_payment]}
    effect: allow
  - id: any-stripe
    match: {tools: [stripe]}
    if: params.x == 1
    effect: deny
  - id: gh
    match: {tools: [github]}
    effect: allow
)");
  ASSERT_TRUE(out.policy) << testing::PrintToString(Messages(out));
  const auto& pay = out.policy->index.Candidates("", "stripe", "create_payment");
  ASSERT_EQ(pay.size(), 2u);
  EXPECT_EQ(pay[0]->id, "any-stripe");  // deny sorts before allow
  EXPECT_EQ(pay[1]->id, "pay");
  EXPECT_EQ(out.policy->index.Candidates("", "stripe", "refund").size(), 1u);
  EXPECT_EQ(out.policy->index.Candidates("", "github", "*").size(), 1u);
  EXPECT_TRUE(out.policy->index.Candidates("", "github", "x").empty());
}

TEST(CompilerTest, VersionDoesNotDependOnHowTheDirectoryIsNamed) {
  auto relative = CompileBundle("examples/quickstart");
  auto absolute = CompileBundle(std::filesystem::absolute("examples/quickstart/").string());
  ASSERT_TRUE(relative.policy && absolute.policy);
  EXPECT_EQ(relative.policy->version, absolute.policy->version);
  EXPECT_EQ(relative.policy->name, absolute.policy->name);
}

TEST(CompilerTest, TopLevelLimitsBelongToTenants) {
  auto out = CompileOne(std::string(kHeader) + "limits: {max_daily_budget_usd: 10}\n");
  EXPECT_FALSE(out.policy);
  EXPECT_THAT(Messages(out), ElementsAre(HasSubstr("p.yaml:13:9: error[tenant-scope]")));
  auto bad = CompileFiles({{"t.yaml", R"(apiVersion: aegis/v1
kind: Policy
metadata: {tenant: acme}
limits: {burst: 3, max_daily_budget_usd: -1, colour: red}
)"}},
                          "t");
  auto lines = Messages(bad);
  EXPECT_THAT(lines, testing::Contains(HasSubstr("burst needs max_requests_per_second")));
  EXPECT_THAT(lines, testing::Contains(HasSubstr("error[invalid-amount]")));
  EXPECT_THAT(lines, testing::Contains(HasSubstr("unknown key \"colour\" in limits")));
}

TEST(CompilerTest, RulesThatLetCallsHappenMayCarryLimits) {
  auto out = CompileOne(std::string(kHeader) + R"(rules:
  - id: slow
    match: {tools: [stripe]}
    effect: allow
    limits: {max_requests_per_second: 0.5, burst: 2, max_daily_budget_usd: 10}
  - id: no
    match: {tools: [stripe]}
    effect: deny
    limits: {max_requests_per_second: 1}
)");
  EXPECT_THAT(Messages(out),
              ElementsAre("p.yaml:21:13: error[wrong-value]: limits apply to the calls a rule "
                          "lets happen: allow and sanitize rules only"));
  out = CompileOne(std::string(kHeader) + R"(rules:
  - id: slow
    match: {tools: [stripe]}
    effect: allow
    limits: {max_requests_per_second: 0.5, burst: 2, max_daily_budget_usd: 10}
)");
  ASSERT_TRUE(out.policy) << testing::PrintToString(Messages(out));
  const Rule& r = *out.policy->rules[0];
  EXPECT_EQ(r.limits.max_requests_per_second, 0.5);
  EXPECT_EQ(r.limits.burst, 2);
  ASSERT_EQ(r.limits.budgets.size(), 1u);
  EXPECT_EQ(r.limits.budgets[0].usd, 10'000'000);
}

TEST(CompilerTest, BudgetsHaveWindows) {
  auto out = CompileFiles({{"p.yaml", R"(apiVersion: aegis/v1
kind: Policy
tools:
  llm:
    max_monthly_budget_usd: 300
agents:
  bot:
    tools: [llm]
    max_daily_budget_usd: 50
    max_monthly_budget_usd: 1000.5
    budgets:
      - {usd: 5, window: 1h}
      - {usd: 0.25, window: 90s}
      - usd: 100
        window: 7d
)"},
                           {"t.yaml", R"(apiVersion: aegis/v1
kind: Policy
metadata: {tenant: acme}
limits:
  budgets: [{usd: 20000, window: month}, {usd: 1, window: 1h30m}]
)"}},
                          "test");
  ASSERT_TRUE(out.policy) << testing::PrintToString(Messages(out));
  const auto& budgets = out.policy->FindAgent("", "bot")->limits.budgets;
  ASSERT_EQ(budgets.size(), 5u);
  EXPECT_EQ(budgets[0].window, BudgetWindow::kDay);
  EXPECT_EQ(budgets[0].usd, 50'000'000);
  EXPECT_EQ(budgets[0].location.line, 9);
  EXPECT_EQ(budgets[1].window, BudgetWindow::kMonth);
  EXPECT_EQ(budgets[1].usd, 1'000'500'000);
  EXPECT_EQ(budgets[2].window, BudgetWindow::kDuration);
  EXPECT_EQ(budgets[2].duration_nanos, 3'600'000'000'000);
  EXPECT_EQ(budgets[2].usd, 5'000'000);
  EXPECT_EQ(budgets[3].duration_nanos, 90'000'000'000);
  EXPECT_EQ(budgets[3].usd, 250'000);
  EXPECT_EQ(budgets[4].duration_nanos, 7 * 86'400'000'000'000);
  EXPECT_EQ(budgets[4].location.line, 14);
  EXPECT_FALSE(out.policy->FindAgent("", "bot")->limits.empty());
  const auto& tool = out.policy->FindTool("", "llm")->limits;
  ASSERT_EQ(tool.budgets.size(), 1u);
  EXPECT_EQ(tool.budgets[0].window, BudgetWindow::kMonth);
  EXPECT_FALSE(tool.empty());
  const auto& tenant = out.policy->FindScope("acme")->limits;
  ASSERT_EQ(tenant.budgets.size(), 2u);
  EXPECT_EQ(tenant.budgets[1].duration_nanos, 5'400'000'000'000);
  EXPECT_TRUE(out.policy->FindScope("")->limits.empty());
}

TEST(CompilerTest, RefusesBadBudgetsWhereTheyAreWritten) {
  auto out = CompileOne(R"(apiVersion: aegis/v1
kind: Policy
tools:
  llm: {budgets: {usd: 1, window: day}}
agents:
  a:
    max_daily_budget_usd: 5
    max_monthly_budget_usd: -3
    budgets:
      - {usd: 1, window: weekly}
      - {usd: 1, window: 367d}
      - {usd: 1, window: 0s}
      - {usd: 1}
      - {window: 1h, usd: 1.0000001}
      - {usd: 2, window: 24h}
      - {usd: 2, window: 1h, colour: red}
      - {usd: 3, window: 60m}
      - {usd: 3, window: 60}
      - [usd, 3]
  b:
    max_monthly_budget_usd: 5
    budgets: [{usd: 1, window: month}, {usd: 1, window: 1d}, {usd: 1, window: day}]
)");
  EXPECT_FALSE(out.policy);
  EXPECT_THAT(
      Messages(out),
      ElementsAre(
          "p.yaml:4:18: error[wrong-type]: budgets must be a list, not a map",
          "p.yaml:8:29: error[invalid-amount]: max_monthly_budget_usd must be a non-negative "
          "dollar amount with at most 6 decimals",
          "p.yaml:10:26: error[wrong-value]: a budget's window must be day, month or a duration "
          "such as 90s, 30m, 1h or 7d, not \"weekly\"",
          "p.yaml:11:26: error[wrong-value]: a budget's window may be at most 366d",
          "p.yaml:12:26: error[wrong-value]: a budget's window must be day, month or a duration "
          "such as 90s, 30m, 1h or 7d, not \"0s\"",
          "p.yaml:13:9: error[missing-key]: a budget needs a window: day, month or a duration "
          "such as 1h",
          "p.yaml:14:27: error[invalid-amount]: a budget's usd must be a non-negative dollar "
          "amount with at most 6 decimals",
          "p.yaml:15:26: error[duplicate-id]: another budget over the same window (24h) is set "
          "at p.yaml:7:27",
          "p.yaml:16:30: error[unknown-key]: unknown key \"colour\" in a budget (allowed: usd, "
          "window)",
          "p.yaml:17:26: error[duplicate-id]: another budget over the same window (60m) is set "
          "at p.yaml:16:9",
          "p.yaml:18:26: error[wrong-value]: a budget's window must be day, month or a duration "
          "such as 90s, 30m, 1h or 7d, not \"60\"",
          "p.yaml:19:9: error[wrong-type]: a budget must be a map, not a list",
          "p.yaml:22:32: error[duplicate-id]: another budget over the same window (month) is set "
          "at p.yaml:21:29",
          "p.yaml:22:79: error[duplicate-id]: another budget over the same window (day) is set "
          "at p.yaml:22:40"));
}

TEST(CompilerTest, CostMayBeAnExpression) {
  auto out = CompileOne(R"(apiVersion: aegis/v1
kind: Policy
tools:
  llm:
    cost_usd: "double(params.max_tokens) * 0.00003"
    actions:
      chat: {cost_usd: '0.01 + double(size(params.messages)) * 0.002'}
      fixed: {cost_usd: 0.5}
      plain: {cost_usd: params.n}
      tools_only: {}
  flat: {cost_usd: 0.25}
)");
  ASSERT_TRUE(out.policy) << testing::PrintToString(Messages(out));
  const Tool* llm = out.policy->FindTool("", "llm");
  ASSERT_TRUE(llm->cost_expr);
  EXPECT_FALSE(llm->cost);
  EXPECT_EQ(llm->cost_expr->source, "double(params.max_tokens) * 0.00003");
  EXPECT_EQ(llm->cost_expr->location.line, 5);
  ASSERT_TRUE(llm->FindAction("chat")->cost_expr);
  EXPECT_EQ(llm->FindAction("chat")->cost_expr->program->ResultType(), "double");
  EXPECT_EQ(*llm->FindAction("fixed")->cost, 500'000);
  EXPECT_FALSE(llm->FindAction("fixed")->cost_expr);
  // A plain YAML string is an expression too; only numbers are amounts.
  EXPECT_TRUE(llm->FindAction("plain")->cost_expr);
  EXPECT_FALSE(llm->FindAction("tools_only")->has_cost());
  EXPECT_EQ(*out.policy->FindTool("", "flat")->cost, 250'000);
}

TEST(CompilerTest, CostExpressionErrorsAreLocated) {
  auto out = CompileOne(R"(apiVersion: aegis/v1
kind: Policy
tools:
  llm:
    cost_usd: "params.max_tokens *"
    actions:
      a: {cost_usd: "cost_usd * 2.0"}
      b: {cost_usd: "size(params.messages) * 0.002"}
      c: {cost_usd: "'expensive'"}
      d: {cost_usd: "budget + 1"}
      e: {cost_usd: ""}
      f: {cost_usd: 1e3}
)");
  EXPECT_FALSE(out.policy);
  EXPECT_THAT(
      Messages(out),
      ElementsAre(
          "p.yaml:5:35: error[expr-syntax]: cost_usd of tool llm: unexpected end of input",
          "p.yaml:7:22: error[expr-undeclared]: cost_usd of action a of tool llm: a cost "
          "expression cannot read cost_usd, the cost it computes",
          "p.yaml:8:44: error[expr-type]: cost_usd of action b of tool llm: no matching "
          "overload for '*' applied to (int, double)",
          "p.yaml:9:21: error[expr-type]: cost_usd of action c of tool llm: the expression has "
          "type string; it must be a number of dollars (int, uint or double)",
          "p.yaml:10:22: error[expr-undeclared]: cost_usd of action d of tool llm: undeclared "
          "reference to 'budget'",
          "p.yaml:11:21: error[wrong-value]: cost_usd of action e of tool llm is empty: write an "
          "amount or an expression",
          "p.yaml:12:21: error[invalid-amount]: cost_usd must be a non-negative dollar amount "
          "with at most 6 decimals"));
}

TEST(CompilerTest, ToolHostsMayBeWildcards) {
  auto out = CompileOne(R"(apiVersion: aegis/v1
kind: Policy
tools:
  s3: {hosts: ["*.s3.amazonaws.com"]}
  bad: {hosts: ["a*.example.com", "*"]}
)");
  EXPECT_FALSE(out.policy);
  auto lines = Messages(out);
  EXPECT_EQ(lines.size(), 2u) << testing::PrintToString(lines);
  EXPECT_THAT(lines, testing::Each(HasSubstr("error[invalid-host]")));
  auto ok = CompileOne("apiVersion: aegis/v1\nkind: Policy\ntools:\n  s3: {hosts: [\"*.s3.amazonaws.com\"]}\n");
  ASSERT_TRUE(ok.policy);
  const Tool* s3 = ok.policy->FindTool("", "s3");
  EXPECT_TRUE(s3->hosts[0].Matches("bucket.s3.amazonaws.com"));
  EXPECT_FALSE(s3->hosts[0].Matches("s3.amazonaws.com"));
}

TEST(CompilerTest, ReadsBundleDirectoriesAndReportsMissingOnes) {
  auto out = CompileBundle("examples/quickstart");
  EXPECT_TRUE(out.policy) << testing::PrintToString(Messages(out));
  auto missing = CompileBundle("/nonexistent/bundle");
  EXPECT_FALSE(missing.policy);
  EXPECT_THAT(Messages(missing), ElementsAre(HasSubstr("error[not-a-bundle]")));
  auto one_file = CompileBundle("examples/quickstart/policy.yaml");
  ASSERT_TRUE(one_file.policy) << testing::PrintToString(Messages(one_file));
  EXPECT_EQ(one_file.policy->version, out.policy->version);
}

}  // namespace
}  // namespace aegis::policy
