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
