#include "engine/engine.h"

#include "common/strings.h"
#include "engine/call_digest.h"
#include "engine/policy_tests.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "limits/memory_store.h"
#include "policy/compiler.h"

namespace aegis::engine {
namespace {

using policy::Effect;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1'780'000'000'000'000'000;  // 2026-05-28

std::shared_ptr<const policy::CompiledPolicy> MustCompile(
    std::vector<policy::SourceFile> files) {
  auto out = policy::CompileFiles(files, "test");
  std::string all;
  for (const auto& d : out.diagnostics.Sorted()) all += d.ToString() + "\n";
  EXPECT_TRUE(out.policy) << all;
  return out.policy;
}

constexpr std::string_view kBase = R"(apiVersion: aegis/v1
kind: Policy
metadata: {name: base}
tools:
  stripe:
    hosts: [api.stripe.com]
    cost_usd: 0.01
    actions:
      create_payment: {method: POST, path: /v1/payment_intents, cost_usd: 0.002}
      refund: {method: POST, path: "/v1/refunds/{id}"}
  ehr:
    hosts: [ehr.internal]
agents:
  finance-agent:
    tools: [stripe]
    allowed_domains: [api.stripe.com]
  clinic-agent:
    tools: ["*"]
    allowed_domains: ["*.internal"]
)";

Decision DecideJson(const Engine& engine, std::string_view call_json) {
  CallParseOptions options;
  options.trusted = true;
  auto call = ParseCall(call_json, kNow, options);
  EXPECT_TRUE(call.ok()) << call.status();
  return engine.Decide(*call);
}

std::string RuleOf(const Decision& d) { return d.deciding_rule ? d.deciding_rule->id : ""; }

class EngineTest : public ::testing::Test {
 protected:
  Engine Make(std::string_view rules) {
    return Engine(MustCompile({{"p.yaml", std::string(kBase) + std::string(rules)}}));
  }
};

// Offers (what MCP tools/list shows) agrees with Decide: whatever it hides, Decide denies for
// any parameters; what it shows some parameters can get through.
TEST_F(EngineTest, OffersAgreesWithDecide) {
  Engine e = Make(R"(rules:
  - id: payments
    match: {agents: [finance-agent], tools: [stripe], actions: [create_payment]}
    if: params.amount < 100
    effect: allow
  - id: no-refunds
    match: {tools: [stripe], actions: [refund]}
    effect: deny
  - id: ehr-export
    match: {tools: [ehr]}
    effect: approval_needed
)");
  auto offers = [&](std::string_view json) {
    CallParseOptions options;
    options.trusted = true;
    auto call = ParseCall(json, kNow, options);
    EXPECT_TRUE(call.ok()) << call.status();
    return e.Offers(*call);
  };
  // A conditional allow: offered; the call with fitting parameters passes.
  EXPECT_TRUE(offers(R"({"agent":"finance-agent","tool":"stripe","action":"create_payment"})"));
  EXPECT_EQ(DecideJson(e, R"({"agent":"finance-agent","tool":"stripe","action":"create_payment",
                            "params":{"amount":5}})").outcome, Effect::kAllow);
  // An unconditional deny, an action no rule allows under default deny, a tool out of scope,
  // an unknown agent, an undeclared action: hidden, and denied whatever the parameters.
  for (std::string_view call : {
           R"({"agent":"finance-agent","tool":"stripe","action":"refund"})",
           R"({"agent":"clinic-agent","tool":"stripe","action":"create_payment"})",
           R"({"agent":"finance-agent","tool":"ehr","action":"export"})",
           R"({"agent":"nobody","tool":"stripe","action":"create_payment"})",
           R"({"agent":"finance-agent","tool":"stripe","action":"teleport"})"}) {
    EXPECT_FALSE(offers(call)) << call;
    std::string with_params(call.substr(0, call.size() - 1));
    with_params += R"(,"params":{"amount":1}})";
    EXPECT_EQ(DecideJson(e, with_params).outcome, Effect::kDeny) << call;
  }
  // approval_needed can end in an allow (with an approval): offered.
  EXPECT_TRUE(offers(R"({"agent":"clinic-agent","tool":"ehr","action":"export"})"));
}

TEST_F(EngineTest, StrongestEffectWinsRegardlessOfOrder) {
  Engine e = Make(R"(rules:
  - id: allow-all
    match: {tools: [stripe]}
    effect: allow
  - id: big
    match: {tools: [stripe]}
    if: params.amount > 5000
    effect: approval_needed
  - id: blocked-currency
    match: {tools: [stripe]}
    if: params.currency == "RUB"
    effect: deny
)");
  auto d = DecideJson(e, R"({"agent":"finance-agent","tool":"stripe","action":"create_payment",
                             "params":{"amount":7000,"currency":"RUB"}})");
  EXPECT_EQ(d.outcome, Effect::kDeny);
  EXPECT_EQ(RuleOf(d), "blocked-currency");
  d = DecideJson(e, R"({"agent":"finance-agent","tool":"stripe","action":"create_payment",
                        "params":{"amount":7000,"currency":"USD"}})");
  EXPECT_EQ(d.outcome, Effect::kApprovalNeeded);
  EXPECT_EQ(RuleOf(d), "big");
  d = DecideJson(e, R"({"agent":"finance-agent","tool":"stripe","action":"create_payment",
                        "params":{"amount":70,"currency":"USD"}})");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  EXPECT_EQ(RuleOf(d), "allow-all");
}

TEST_F(EngineTest, ConditionErrorsFailSafe) {
  Engine e = Make(R"(rules:
  - id: allow-small
    match: {tools: [stripe]}
    if: params.amount < 100
    effect: allow
  - id: deny-eu
    match: {tools: [stripe], actions: [refund]}
    if: params.region == "eu" || params.amount / params.divisor > 1
    effect: deny
)");
  // Missing field in an allow rule: not matched, so the default (deny) applies, and the
  // decision names the rule and the error.
  auto d = DecideJson(e, R"({"agent":"finance-agent","tool":"stripe","action":"create_payment",
                             "params":{}})");
  EXPECT_EQ(d.outcome, Effect::kDeny);
  ASSERT_GE(d.reasons.size(), 2u);
  EXPECT_EQ(d.reasons[0].code, reason::kDefault);
  EXPECT_EQ(d.reasons[1].code, reason::kConditionError);
  EXPECT_EQ(d.reasons[1].rule->id, "allow-small");
  EXPECT_THAT(d.reasons[1].detail, HasSubstr("amount"));
  // Division by zero in a deny rule: matched.
  d = DecideJson(e, R"({"agent":"finance-agent","tool":"stripe","action":"refund",
                        "params":{"amount":5,"divisor":0,"region":"us"}})");
  EXPECT_EQ(d.outcome, Effect::kDeny);
  EXPECT_EQ(d.reasons[0].code, reason::kConditionError);
  EXPECT_EQ(RuleOf(d), "deny-eu");
  // A true left side absorbs the error, as in CEL.
  d = DecideJson(e, R"({"agent":"finance-agent","tool":"stripe","action":"refund",
                        "params":{"amount":5,"divisor":0,"region":"eu"}})");
  EXPECT_EQ(d.reasons[0].code, reason::kRule);
}

TEST_F(EngineTest, ScopeChecksComeBeforeRules) {
  Engine e = Make(R"(rules:
  - id: allow-all
    match: {tools: ["*"]}
    effect: allow
)");
  EXPECT_EQ(DecideJson(e, R"({"agent":"ghost","tool":"stripe","action":"refund"})").reasons[0].code,
            reason::kUnknownAgent);
  EXPECT_EQ(DecideJson(e, R"({"agent":"finance-agent","tool":"ehr"})").reasons[0].code,
            reason::kToolOutOfScope);
  EXPECT_EQ(DecideJson(e, R"({"agent":"finance-agent","tool":"paypal"})").reasons[0].code,
            reason::kUnknownTool);
  EXPECT_EQ(DecideJson(e, R"({"agent":"finance-agent","tool":"stripe","action":"teleport"})")
                .reasons[0]
                .code,
            reason::kUnknownAction);
  // An explicit tool with a host outside the tool's hosts is refused.
  auto d = DecideJson(e, R"({"agent":"finance-agent","tool":"stripe","action":"refund",
      "request":{"method":"POST","host":"evil.example","path":"/v1/refunds/r1"}})");
  EXPECT_EQ(d.reasons[0].code, reason::kHostNotInTool);
  // Domain scope: clinic-agent may only reach *.internal.
  d = DecideJson(e, R"({"agent":"clinic-agent","tool":"ehr",
      "request":{"method":"GET","host":"EHR.internal.","path":"/export"}})");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  d = DecideJson(e, R"({"agent":"clinic-agent","tool":"stripe","action":"refund",
      "request":{"method":"POST","host":"api.stripe.com","path":"/v1/refunds/r1"}})");
  EXPECT_EQ(d.reasons[0].code, reason::kDomainOutOfScope);
  // Naming the tool without a request does not get around the domain scope: the tool's hosts
  // must be within it.
  d = DecideJson(e, R"({"agent":"clinic-agent","tool":"stripe","action":"refund"})");
  EXPECT_EQ(d.reasons[0].code, reason::kDomainOutOfScope);
  d = DecideJson(e, R"({"agent":"clinic-agent","tool":"ehr"})");
  EXPECT_EQ(d.outcome, Effect::kAllow);
}

TEST_F(EngineTest, ResolvesToolAndActionFromTheCatalog) {
  Engine e = Make(R"(rules:
  - id: refunds
    match: {tools: [stripe], actions: [refund]}
    effect: allow
)");
  auto d = DecideJson(e, R"({"agent":"finance-agent",
      "request":{"method":"post","host":"api.stripe.com:443","path":"/v1/refunds/re_1?expand=x"}})");
  EXPECT_EQ(d.tool, "stripe");
  EXPECT_EQ(d.action, "refund");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  EXPECT_EQ(d.cost, 10000);  // the tool's default cost
  d = DecideJson(e, R"({"agent":"finance-agent",
      "request":{"method":"GET","host":"api.stripe.com","path":"/v1/refunds/re_1"}})");
  EXPECT_EQ(d.reasons[0].code, reason::kUnresolved);
  d = DecideJson(e, R"({"agent":"finance-agent",
      "request":{"method":"GET","host":"unknown.example","path":"/"}})");
  EXPECT_EQ(d.reasons[0].code, reason::kUnresolved);
  EXPECT_EQ(d.outcome, Effect::kDeny);
}

TEST_F(EngineTest, SeveralToolsMayShareAHost) {
  Engine e(MustCompile({{"p.yaml", R"(apiVersion: aegis/v1
kind: Policy
tools:
  gh-issues:
    hosts: [api.github.com]
    actions: {create_issue: {method: POST, path: "/repos/{owner}/{repo}/issues"}}
  gh-actions:
    hosts: [api.github.com]
    actions: {dispatch: {method: POST, path: "/repos/{owner}/{repo}/actions/workflows/{id}/dispatches"}}
  gh-other: {hosts: [api.github.com]}
agents:
  ci: {tools: ["gh-*"]}
rules:
  - {id: issues, match: {tools: [gh-issues]}, effect: allow}
  - {id: dispatch, match: {tools: [gh-actions]}, effect: approval_needed}
)"}}));
  auto d = DecideJson(e, R"({"agent":"ci","request":{"method":"POST","host":"api.github.com",
      "path":"/repos/acme/app/actions/workflows/7/dispatches"}})");
  EXPECT_EQ(d.tool, "gh-actions");
  EXPECT_EQ(d.action, "dispatch");
  EXPECT_EQ(RuleOf(d), "dispatch");
  d = DecideJson(e, R"({"agent":"ci","request":{"method":"POST","host":"api.github.com",
      "path":"/repos/acme/app/issues"}})");
  EXPECT_EQ(d.tool, "gh-issues");
  EXPECT_EQ(RuleOf(d), "issues");
  // No action matches: the host's tool without actions takes it (and the default denies).
  d = DecideJson(e, R"({"agent":"ci","request":{"method":"DELETE","host":"api.github.com",
      "path":"/repos/acme/app"}})");
  EXPECT_EQ(d.tool, "gh-other");
  EXPECT_EQ(d.reasons[0].code, reason::kDefault);
}

TEST_F(EngineTest, DefaultEffectAppliesWhenNothingMatches) {
  Engine deny = Make(R"(rules:
  - id: only-big
    match: {tools: [stripe]}
    if: params.amount > 10
    effect: allow
)");
  auto d = DecideJson(deny, R"({"agent":"finance-agent","tool":"stripe","action":"refund",
                                "params":{"amount":1}})");
  EXPECT_EQ(d.outcome, Effect::kDeny);
  EXPECT_EQ(d.reasons[0].code, reason::kDefault);

  std::string with_default(kBase);
  with_default += "default: allow\n";
  Engine allow(MustCompile({{"p.yaml", with_default}}));
  d = DecideJson(allow, R"({"agent":"finance-agent","tool":"stripe","action":"refund"})");
  EXPECT_EQ(d.outcome, Effect::kAllow);
}

TEST_F(EngineTest, ShadowModeDecidesButDoesNotEnforce) {
  std::string shadow(kBase);
  shadow += "mode: shadow\nrules:\n  - {id: no, match: {tools: [stripe]}, effect: deny}\n";
  Engine e(MustCompile({{"p.yaml", shadow}}));
  auto d = DecideJson(e, R"({"agent":"finance-agent","tool":"stripe","action":"refund"})");
  EXPECT_EQ(d.outcome, Effect::kDeny);
  EXPECT_FALSE(d.enforced());
  EXPECT_EQ(d.effective(), Effect::kAllow);
  EXPECT_EQ(d.reasons.back().code, reason::kShadowMode);
  EXPECT_THAT(d.ToJson(), HasSubstr(R"("decision":"deny","effective_decision":"allow",)"
                                    R"("enforced":false,"mode":"shadow")"));
}

TEST_F(EngineTest, TenantsAreIsolated) {
  Engine e(MustCompile({{"base.yaml", std::string(kBase)},
                        {"acme.yaml", R"(apiVersion: aegis/v1
kind: Policy
metadata: {tenant: acme}
default: allow
agents:
  acme-bot: {tools: [stripe]}
rules:
  - id: acme-no-refunds
    match: {tools: [stripe], actions: [refund]}
    effect: deny
)"},
                        {"globex.yaml", R"(apiVersion: aegis/v1
kind: Policy
metadata: {tenant: globex}
agents:
  globex-bot: {tools: [stripe]}
rules:
  - id: globex-refunds
    match: {tools: [stripe], actions: [refund]}
    effect: allow
)"}}));
  // acme's deny does not reach globex, and globex's allow does not reach acme.
  auto d = DecideJson(e, R"({"tenant":"acme","agent":"acme-bot","tool":"stripe","action":"refund"})");
  EXPECT_EQ(RuleOf(d), "acme-no-refunds");
  d = DecideJson(e,
                 R"({"tenant":"globex","agent":"globex-bot","tool":"stripe","action":"refund"})");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  EXPECT_EQ(RuleOf(d), "globex-refunds");
  // A tenant's agents do not exist for another tenant.
  d = DecideJson(e, R"({"tenant":"globex","agent":"acme-bot","tool":"stripe","action":"refund"})");
  EXPECT_EQ(d.reasons[0].code, reason::kUnknownAgent);
  // acme's default allow applies to acme only; globex falls back to the bundle default (deny).
  d = DecideJson(e, R"({"tenant":"acme","agent":"acme-bot","tool":"stripe","action":"create_payment"})");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  d = DecideJson(
      e, R"({"tenant":"globex","agent":"globex-bot","tool":"stripe","action":"create_payment"})");
  EXPECT_EQ(d.outcome, Effect::kDeny);
}

TEST_F(EngineTest, TracedAndUntracedDecisionsNameTheSameRule) {
  // The tenant file sorts first, so its rule comes earlier in bundle order than the bundle-wide
  // rule of the same effect; both lists must agree on the earliest one with or without a trace.
  Engine e(MustCompile({{"a-acme.yaml", R"(apiVersion: aegis/v1
kind: Policy
metadata: {tenant: acme}
rules:
  - {id: t-deny, match: {tools: [stripe]}, effect: deny}
)"},
                        {"z-base.yaml", std::string(kBase) + R"(rules:
  - {id: g-deny, match: {tools: [stripe]}, if: 'params.x == 1', effect: deny}
)"}}));
  CallParseOptions options;
  auto call = ParseCall(R"({"tenant":"acme","agent":"finance-agent","tool":"stripe",
                           "action":"refund","params":{"x":1}})",
                        kNow, options);
  ASSERT_TRUE(call.ok()) << call.status();
  DecideTrace trace;
  EXPECT_EQ(RuleOf(e.Decide(*call)), "t-deny");
  EXPECT_EQ(RuleOf(e.Decide(*call, &trace)), "t-deny");
  EXPECT_EQ(trace.matched.size(), 2u);
}

TEST_F(EngineTest, SanitizeMergesRedactionsOfAllMatchingRules) {
  Engine e = Make(R"(rules:
  - id: ssn
    match: {tools: [ehr]}
    effect: sanitize
    redact: {fields: [params.patient.ssn]}
  - id: dob
    match: {tools: [ehr]}
    effect: sanitize
    redact: {detectors: [dob]}
)");
  auto d = DecideJson(e, R"({"agent":"clinic-agent","tool":"ehr"})");
  EXPECT_EQ(d.outcome, Effect::kSanitize);
  EXPECT_THAT(d.redact.fields, ::testing::ElementsAre("params.patient.ssn"));
  EXPECT_THAT(d.redact.detectors, ::testing::ElementsAre("dob"));
  EXPECT_THAT(d.ToJson(), HasSubstr(R"("redact":{"fields":["params.patient.ssn"])"));
}

TEST_F(EngineTest, DecisionJsonCarriesIdsVersionAndApproval) {
  Engine e = Make(R"(rules:
  - id: big
    match: {tools: [stripe]}
    if: params.amount > 5000
    effect: approval_needed
    approval: {quorum: 2, ttl: 30m, notify: [finance-slack]}
    message: two approvers
)");
  auto d = DecideJson(e, R"({"agent":"finance-agent","tool":"stripe","action":"create_payment",
                             "params":{"amount":7000}})");
  std::string json = d.ToJson();
  auto parsed = common::ParseJson(json);
  ASSERT_TRUE(parsed.ok()) << json;
  EXPECT_EQ(parsed->Find("decision")->as_string(), "approval_needed");
  EXPECT_EQ(parsed->Find("policy_version")->as_string(), e.policy()->version);
  EXPECT_EQ(parsed->Find("decision_id")->as_string().size(), 36u);
  EXPECT_EQ(parsed->Find("decision_id")->as_string()[14], '7');  // UUIDv7
  EXPECT_EQ(parsed->Find("approval")->Find("quorum")->as_int(), 2);
  EXPECT_EQ(parsed->Find("approval")->Find("ttl_seconds")->as_int(), 1800);
  EXPECT_EQ(parsed->Find("cost_usd")->as_double(), 0.002);
  EXPECT_EQ(parsed->Find("reasons")->as_array()[0].Find("message")->as_string(), "two approvers");
  // Two decisions never share an id.
  EXPECT_NE(d.id_view(), DecideJson(e, R"({"agent":"finance-agent","tool":"stripe",
                                          "action":"refund"})").id_view());
}

TEST_F(EngineTest, PolicyTestsReportFailuresAndUntestedRules) {
  Engine e = Make(R"(rules:
  - id: pay
    match: {tools: [stripe], actions: [create_payment]}
    effect: allow
  - id: refunds
    match: {tools: [stripe], actions: [refund]}
    effect: deny
tests:
  - name: pays
    input: {agent: finance-agent, tool: stripe, action: create_payment}
    expect: {decision: allow, rule: pay}
  - name: wrong expectation
    input: {agent: finance-agent, tool: stripe, action: create_payment}
    expect: {decision: deny}
  - name: bad input
    input: {agent: finance-agent, tool: stripe, bogus: 1}
    expect: {decision: deny}
  - name: misspelt reason
    input: {agent: finance-agent, tool: stripe, action: refund}
    expect: {decision: deny, reason: rules}
)");
  PolicyTestReport report = RunPolicyTests(e, kNow);
  EXPECT_EQ(report.passed(), 1);
  EXPECT_EQ(report.failed(), 3);
  EXPECT_THAT(report.results[3].failure, HasSubstr("\"rules\", which is not a reason code"));
  EXPECT_EQ(report.results[1].failure, "expected deny, got allow by rule pay (rule)");
  EXPECT_THAT(report.results[2].failure, HasSubstr("unknown field \"bogus\""));
  ASSERT_EQ(report.unexercised.size(), 1u);
  EXPECT_EQ(report.unexercised[0]->id, "refunds");
}

TEST_F(EngineTest, TestsMayFixTheTimeOfTheCall) {
  Engine e = Make(R"(rules:
  - id: after-hours
    match: {tools: [stripe]}
    if: now.getHours() < 8 || now.getHours() >= 18
    effect: approval_needed
  - id: pay
    match: {tools: [stripe]}
    effect: allow
tests:
  - name: office hours
    input: {agent: finance-agent, tool: stripe, action: refund, now: "2026-05-01T10:00:00Z"}
    expect: {decision: allow, rule: pay}
  - name: at night
    input: {agent: finance-agent, tool: stripe, action: refund, now: "2026-05-01T23:30:00Z"}
    expect: {decision: approval_needed, rule: after-hours}
)");
  PolicyTestReport report = RunPolicyTests(e, kNow);
  EXPECT_EQ(report.passed(), 2) << report.results[0].failure << report.results[1].failure;
  // Untrusted callers cannot set the clock.
  auto call = ParseCall(R"({"agent":"a","tool":"t","now":"2026-05-01T23:30:00Z"})", kNow);
  ASSERT_FALSE(call.ok());
  EXPECT_THAT(call.status().message(), HasSubstr("clock"));
}

TEST_F(EngineTest, AgentRateLimitsAndBudgetsApplyToCallsThatWouldHappen) {
  limits::MemoryLimitStore store;
  Engine e(MustCompile({{"p.yaml", R"(apiVersion: aegis/v1
kind: Policy
tools:
  stripe:
    actions:
      pay: {cost_usd: 0.002}
      look: {}
agents:
  fast: {tools: [stripe], max_requests_per_second: 1, burst: 2}
  thrifty: {tools: [stripe], max_daily_budget_usd: 0.005}
rules:
  - {id: no-look, match: {tools: [stripe], actions: [look]}, effect: deny}
  - {id: pay, match: {tools: [stripe], actions: [pay]}, effect: allow}
)"}}),
           &store);
  auto call = [&](std::string agent, std::string action) {
    auto c = ParseCall(R"({"agent":")" + agent + R"(","tool":"stripe","action":")" + action +
                           R"("})",
                       kNow);
    EXPECT_TRUE(c.ok()) << c.status();
    return e.Decide(*c);
  };
  EXPECT_EQ(call("fast", "pay").outcome, Effect::kAllow);
  EXPECT_EQ(call("fast", "pay").outcome, Effect::kAllow);
  Decision limited = call("fast", "pay");
  EXPECT_EQ(limited.outcome, Effect::kDeny);
  EXPECT_EQ(limited.reasons[0].code, reason::kRateLimited);
  EXPECT_EQ(limited.retry_after_nanos, 1'000'000'000);
  EXPECT_THAT(limited.ToJson(), HasSubstr(R"("retry_after_ms":1000)"));
  // A call the policy denies is not counted.
  EXPECT_EQ(call("fast", "look").reasons[0].rule->id, "no-look");

  EXPECT_EQ(call("thrifty", "pay").outcome, Effect::kAllow);
  Decision second = call("thrifty", "pay");
  EXPECT_TRUE(second.reserved);
  Decision broke = call("thrifty", "pay");
  EXPECT_EQ(broke.outcome, Effect::kDeny);
  EXPECT_EQ(broke.reasons[0].code, reason::kBudgetExceeded);
  EXPECT_EQ(broke.budget_remaining, 1000);
  EXPECT_THAT(broke.ToJson(), HasSubstr(R"("budget":{"remaining_usd":0.001,"resets_at":")"));
  // Settling a reservation below its estimate frees room for another call.
  ASSERT_TRUE(store.Settle(std::string(second.id_view()), 0, kNow).ok());
  EXPECT_EQ(call("thrifty", "pay").outcome, Effect::kAllow);
}

TEST_F(EngineTest, TenantAndToolLimitsApplyAlongsideTheAgents) {
  limits::MemoryLimitStore store;
  Engine e(MustCompile({{"base.yaml", R"(apiVersion: aegis/v1
kind: Policy
tools:
  stripe: {cost_usd: 0.002, max_requests_per_second: 1, burst: 1}
  ledger: {cost_usd: 0.002}
rules:
  - {id: ok, match: {tools: ["*"]}, effect: allow}
)"},
                        {"acme.yaml", R"(apiVersion: aegis/v1
kind: Policy
metadata: {tenant: acme}
limits: {max_daily_budget_usd: 0.005}
agents:
  a: {tools: ["*"]}
  b: {tools: ["*"]}
)"}}),
           &store);
  auto decide = [&](std::string agent, std::string tool) {
    auto c = ParseCall(R"({"tenant":"acme","agent":")" + agent + R"(","tool":")" + tool + R"("})",
                       kNow);
    EXPECT_TRUE(c.ok()) << c.status();
    return e.Decide(*c);
  };
  // Per agent×tool: a's second stripe call at the same instant is limited, b's first is not.
  EXPECT_EQ(decide("a", "stripe").outcome, Effect::kAllow);
  Decision limited = decide("a", "stripe");
  EXPECT_EQ(limited.reasons[0].code, reason::kRateLimited);
  EXPECT_EQ(limited.reasons[0].detail, "agent_tool/acme/a/stripe");
  EXPECT_EQ(decide("b", "stripe").outcome, Effect::kAllow);
  // The tenant's budget ($0.005) is shared by its agents: $0.004 spent, $0.002 does not fit.
  Decision broke = decide("a", "ledger");
  EXPECT_EQ(broke.reasons[0].code, reason::kBudgetExceeded);
  EXPECT_EQ(broke.reasons[0].detail, "tenant/acme");
  EXPECT_EQ(broke.budget_remaining, 1000);
}

TEST_F(EngineTest, ARuleLimitsTheCallsItDecidesPerAgent) {
  limits::MemoryLimitStore store;
  Engine e(MustCompile({{"p.yaml", R"(apiVersion: aegis/v1
kind: Policy
tools:
  db: {actions: {query: {}, drop_table: {}}}
agents:
  a: {tools: [db]}
  b: {tools: [db]}
rules:
  - id: drops
    match: {tools: [db], actions: [drop_table]}
    effect: allow
    limits: {max_requests_per_second: 0.001, burst: 2}
  - {id: queries, match: {tools: [db]}, effect: allow}
)"}}),
           &store);
  auto decide = [&](std::string agent, std::string action) {
    auto c = ParseCall(R"({"agent":")" + agent + R"(","tool":"db","action":")" + action + R"("})",
                       kNow);
    EXPECT_TRUE(c.ok()) << c.status();
    return e.Decide(*c);
  };
  EXPECT_EQ(decide("a", "drop_table").outcome, Effect::kAllow);
  EXPECT_EQ(decide("a", "drop_table").outcome, Effect::kAllow);
  Decision third = decide("a", "drop_table");
  EXPECT_EQ(third.outcome, Effect::kDeny);
  EXPECT_EQ(third.reasons[0].code, reason::kRateLimited);
  EXPECT_EQ(third.reasons[0].detail, "rule//drops/a");
  // Per agent, and only for what that rule decides.
  EXPECT_EQ(decide("b", "drop_table").outcome, Effect::kAllow);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(decide("a", "query").outcome, Effect::kAllow);
}

TEST_F(EngineTest, BudgetsCountOverTheirOwnWindows) {
  limits::MemoryLimitStore store;
  Engine e(MustCompile({{"p.yaml", R"yaml(apiVersion: aegis/v1
kind: Policy
tools:
  llm: {cost_usd: 0.002}
agents:
  bot: {tools: [llm], max_daily_budget_usd: 0.004, max_monthly_budget_usd: 0.007}
  hourly: {tools: [llm], budgets: [{usd: 0.002, window: 1h}]}
rules:
  - {id: ok, match: {tools: [llm]}, effect: allow}
)yaml"}}),
           &store);
  auto decide = [&](std::string agent, int64_t now) {
    auto c = ParseCall(R"({"agent":")" + agent + R"(","tool":"llm"})", now);
    EXPECT_TRUE(c.ok()) << c.status();
    return e.Decide(*c);
  };
  constexpr int64_t kSecond = 1'000'000'000;
  constexpr int64_t kDay = 86'400 * kSecond;
  constexpr int64_t kMay29 = 1'780'012'800 * kSecond;  // 2026-05-29T00:00:00Z
  constexpr int64_t kJune1 = 1'780'272'000 * kSecond;  // 2026-06-01T00:00:00Z
  // Day one: the daily budget ($0.004) refuses the third call, until the next UTC day.
  EXPECT_EQ(decide("bot", kNow).outcome, Effect::kAllow);
  EXPECT_EQ(decide("bot", kNow).outcome, Effect::kAllow);
  Decision daily = decide("bot", kNow);
  EXPECT_EQ(daily.reasons[0].code, reason::kBudgetExceeded);
  EXPECT_EQ(daily.reasons[0].detail, "agent//bot");
  EXPECT_EQ(daily.budget_remaining, 0);
  EXPECT_EQ(daily.budget_resets_unix_nanos, kMay29);
  // Day two: the daily budget has room again, but the month's ($0.007) holds only one more
  // call, and its refusal lasts until the first of June.
  EXPECT_EQ(decide("bot", kNow + kDay).outcome, Effect::kAllow);
  Decision monthly = decide("bot", kNow + kDay);
  EXPECT_EQ(monthly.reasons[0].code, reason::kBudgetExceeded);
  EXPECT_EQ(monthly.budget_remaining, 1000);
  EXPECT_EQ(monthly.budget_resets_unix_nanos, kJune1);
  EXPECT_EQ(decide("bot", kJune1 - kSecond).reasons[0].code, reason::kBudgetExceeded);
  EXPECT_EQ(decide("bot", kJune1).outcome, Effect::kAllow);
  // A duration window: one call per clock hour (kNow is 20:26:40 UTC).
  constexpr int64_t kNextHour = kNow + (3600 - 1600) * kSecond;
  EXPECT_EQ(decide("hourly", kNow).outcome, Effect::kAllow);
  Decision hourly = decide("hourly", kNow + 60 * kSecond);
  EXPECT_EQ(hourly.reasons[0].code, reason::kBudgetExceeded);
  EXPECT_EQ(hourly.budget_resets_unix_nanos, kNextHour);
  EXPECT_EQ(decide("hourly", kNextHour).outcome, Effect::kAllow);
}

TEST_F(EngineTest, CostExpressionsPriceTheCall) {
  limits::MemoryLimitStore store;
  Engine e(MustCompile({{"p.yaml", R"yaml(apiVersion: aegis/v1
kind: Policy
tools:
  llm:
    cost_usd: "double(params.max_tokens) * 0.00003"
    actions:
      chat: {}
      embed: {cost_usd: "0.0001 * double(size(params.input))"}
      fixed: {cost_usd: 0.5}
agents:
  bot: {tools: [llm], max_daily_budget_usd: 0.1}
rules:
  - {id: pricey, match: {tools: [llm]}, if: cost_usd > 0.05, effect: approval_needed}
  - {id: ok, match: {tools: [llm]}, effect: allow}
)yaml"}}),
           &store);
  auto decide = [&](std::string_view action, std::string_view rest) {
    return DecideJson(
        e, common::StrCat(R"({"agent":"bot","tool":"llm","action":")", action, R"(",)", rest, "}"));
  };
  // The tool's expression prices an action without a cost of its own; rules see the result.
  Decision d = decide("chat", R"("params":{"max_tokens":1000})");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  EXPECT_EQ(d.cost, 30'000);
  EXPECT_TRUE(d.reserved);
  EXPECT_THAT(d.ToJson(), HasSubstr(R"("cost_usd":0.03)"));
  d = decide("chat", R"("params":{"max_tokens":2000})");
  EXPECT_EQ(RuleOf(d), "pricey");
  EXPECT_EQ(d.cost, 60'000);
  // The action's expression wins over the tool's, and the action's constant too: the tool's
  // expression, which would fail without max_tokens, is not evaluated.
  d = decide("embed", R"("params":{"input":["a","b","c"]})");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  EXPECT_EQ(d.cost, 300);
  d = decide("fixed", R"("params":{})");
  EXPECT_EQ(RuleOf(d), "pricey");
  EXPECT_EQ(d.cost, 500'000);
  // The caller's cost wins over every expression.
  d = decide("chat", R"("params":{},"cost_usd":0.01)");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  EXPECT_EQ(d.cost, 10'000);
  // The budget is charged what the expressions computed: $0.0403 so far, then $0.04998.
  d = decide("chat", R"("params":{"max_tokens":1666})");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  EXPECT_EQ(d.cost, 49'980);
  d = decide("chat", R"("params":{"max_tokens":1000})");
  EXPECT_EQ(d.reasons[0].code, reason::kBudgetExceeded);
  EXPECT_EQ(d.budget_remaining, 100'000 - 30'000 - 300 - 10'000 - 49'980);
}

TEST_F(EngineTest, CostExpressionErrorsDenyTheCall) {
  Engine e(MustCompile({{"p.yaml", R"yaml(apiVersion: aegis/v1
kind: Policy
default: allow
tools:
  llm:
    cost_usd: "double(params.max_tokens) * 0.00003"
    actions:
      chat: {}
      refund: {cost_usd: "-double(params.amount)"}
      raw: {cost_usd: "params.n"}
      nan: {cost_usd: "0.0 / 0.0"}
agents:
  bot: {tools: [llm]}
rules:
  - {id: ok, match: {tools: [llm]}, effect: allow}
)yaml"}}));
  auto decide = [&](std::string_view action, std::string_view params) {
    return DecideJson(e, common::StrCat(R"({"agent":"bot","tool":"llm","action":")", action,
                                        R"(","params":)", params, "}"));
  };
  // Fail closed: no rule runs, and the decision says why.
  Decision d = decide("chat", "{}");
  EXPECT_EQ(d.outcome, Effect::kDeny);
  EXPECT_EQ(d.deciding_rule, nullptr);
  ASSERT_EQ(d.reasons.size(), 1u);
  EXPECT_EQ(d.reasons[0].code, reason::kCostError);
  EXPECT_EQ(d.reasons[0].detail, "cost_usd expression failed: no such key: max_tokens");
  EXPECT_EQ(d.cost, 0);
  EXPECT_THAT(d.ToJson(), HasSubstr(R"({"code":"cost_error","detail":"cost_usd expression )"
                                    R"(failed: no such key: max_tokens"})"));
  d = decide("chat", R"({"max_tokens":"lots"})");
  EXPECT_EQ(d.reasons[0].code, reason::kCostError);
  d = decide("refund", R"({"amount":5})");
  EXPECT_EQ(d.reasons[0].code, reason::kCostError);
  EXPECT_EQ(d.reasons[0].detail,
            "cost_usd expression gave -5; a cost must be a finite number of dollars from 0 to "
            "1000000");
  d = decide("raw", R"({"n":1000001})");
  EXPECT_EQ(d.reasons[0].detail,
            "cost_usd expression gave 1000001; a cost must be a finite number of dollars from 0 "
            "to 1000000");
  d = decide("raw", R"({"n":1e300})");
  EXPECT_EQ(d.reasons[0].code, reason::kCostError);
  d = decide("raw", R"({"n":"0.5"})");
  EXPECT_EQ(d.reasons[0].detail, "cost_usd expression gave a string, not a number of dollars");
  d = decide("nan", "{}");
  EXPECT_EQ(d.reasons[0].code, reason::kCostError);
  // At the bounds, and rounded to the nearest micro-dollar.
  d = decide("raw", R"({"n":1000000})");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  EXPECT_EQ(d.cost, 1'000'000'000'000);
  d = decide("raw", R"({"n":0.0000004})");
  EXPECT_EQ(d.cost, 0);
  d = decide("raw", R"({"n":0.0000015})");
  EXPECT_EQ(d.cost, 2);
  // A caller's cost means the expression is not evaluated.
  d = DecideJson(e, R"({"agent":"bot","tool":"llm","action":"chat","cost_usd":0.2})");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  EXPECT_EQ(d.cost, 200'000);
  // Scope refusals come first; the cost of a refused call is not computed.
  d = DecideJson(e, R"({"agent":"ghost","tool":"llm","action":"chat"})");
  EXPECT_EQ(d.reasons[0].code, reason::kUnknownAgent);
  // Policy tests may expect the reason.
  Engine tested(MustCompile({{"p.yaml", R"yaml(apiVersion: aegis/v1
kind: Policy
tools:
  llm: {cost_usd: "double(params.max_tokens) * 0.00003"}
agents:
  bot: {tools: [llm]}
rules:
  - {id: ok, match: {tools: [llm]}, effect: allow}
tests:
  - name: no max_tokens, no price
    input: {agent: bot, tool: llm}
    expect: {decision: deny, reason: cost_error}
  - name: priced
    input: {agent: bot, tool: llm, params: {max_tokens: 10}}
    expect: {decision: allow, rule: ok}
)yaml"}}));
  PolicyTestReport report = RunPolicyTests(tested, kNow);
  EXPECT_EQ(report.passed(), 2) << report.results[0].failure;
}

TEST_F(EngineTest, ShadowModeCountsNothing) {
  limits::MemoryLimitStore store;
  Engine e(MustCompile({{"p.yaml", R"(apiVersion: aegis/v1
kind: Policy
mode: shadow
tools: {stripe: {}}
agents:
  fast: {tools: [stripe], max_requests_per_second: 1, burst: 1}
rules:
  - {id: pay, match: {tools: [stripe]}, effect: allow}
)"}}),
           &store);
  auto c = ParseCall(R"({"agent":"fast","tool":"stripe"})", kNow);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(e.Decide(*c).outcome, Effect::kAllow);
}

TEST_F(EngineTest, ManyUnrelatedRulesAreNotCandidates) {
  std::string big(kBase);
  big += "rules:\n";
  for (int i = 0; i < 2000; ++i) {
    big += "  - {id: r" + std::to_string(i) +
           ", match: {tools: [ehr]}, if: 'params.n == " + std::to_string(i) +
           "', effect: deny}\n";
  }
  big += "  - {id: pay, match: {tools: [stripe]}, effect: allow}\n";
  Engine e(MustCompile({{"p.yaml", big}}));
  EXPECT_EQ(e.policy()->index.Candidates("", "stripe", "refund").size(), 1u);
  EXPECT_EQ(e.policy()->index.Candidates("", "ehr", "*").size(), 2000u);
  auto d = DecideJson(e, R"({"agent":"clinic-agent","tool":"ehr","params":{"n":1999}})");
  EXPECT_EQ(RuleOf(d), "r1999");
}

// A redeemer that knows one token, bound to one digest, usable once.
class OneTokenRedeemer : public OverrideRedeemer {
 public:
  OneTokenRedeemer(std::string token, std::string digest)
      : token_(std::move(token)), digest_(std::move(digest)) {}
  Result Redeem(std::string_view token, std::string_view digest, std::string_view,
                std::string_view, int64_t) override {
    Result r;
    if (token != token_) {
      r.error = "not an override token";
    } else if (digest != digest_) {
      r.error = "the token is for another call";
    } else if (used_) {
      r.error = "the token was used already";
    } else {
      used_ = true;
      r.ok = true;
      r.approval_id = "apr_1";
      r.jti = "jti_1";
    }
    return r;
  }
  void Release(std::string_view jti) override {
    if (jti == "jti_1") used_ = false;
    ++released_;
  }
  bool used_ = false;
  int released_ = 0;

 private:
  std::string token_, digest_;
};

constexpr std::string_view kApprovals = R"(apiVersion: aegis/v1
kind: Policy
tools:
  stripe: {actions: {pay: {}}}
agents:
  fa: {tools: [stripe], max_requests_per_second: 0.001, burst: 1}
rules:
  - id: big
    match: {tools: [stripe]}
    if: params.amount > 5000
    effect: approval_needed
  - id: ok
    match: {tools: [stripe]}
    effect: allow
)";

Decision DecideVerified(const Engine& e, const std::string& json,
                    std::optional<CallContext::VerifiedAgent> verified = std::nullopt) {
  auto c = ParseCall(json, kNow);
  EXPECT_TRUE(c.ok()) << c.status();
  c->verified = std::move(verified);
  return e.Decide(*c);
}

TEST_F(EngineTest, AVerifiedAgentCannotClaimAnotherIdentity) {
  Engine e(MustCompile({{"p.yaml", std::string(kApprovals)}}));
  const std::string call = R"({"agent":"fa","tool":"stripe","action":"pay","params":{"amount":1}})";
  EXPECT_EQ(DecideVerified(e, call, CallContext::VerifiedAgent{"fa", ""}).outcome, Effect::kAllow);
  Decision d = DecideVerified(e, call, CallContext::VerifiedAgent{"other", ""});
  EXPECT_EQ(d.outcome, Effect::kDeny);
  EXPECT_EQ(d.reasons[0].code, reason::kIdentityMismatch);
  EXPECT_EQ(d.reasons[0].detail, R"(the agent token is for agent "other" of tenant "")");
  d = DecideVerified(e, call, CallContext::VerifiedAgent{"fa", "acme"});
  EXPECT_EQ(d.reasons[0].code, reason::kIdentityMismatch);
}

TEST_F(EngineTest, AnOverrideTokenAllowsExactlyTheApprovedCallOnce) {
  limits::MemoryLimitStore store;
  common::Json params = *common::ParseJson(R"({"amount":7000})");
  OneTokenRedeemer redeemer("tok", CallDigest("", "fa", "stripe", "pay", params));
  Engine e(MustCompile({{"p.yaml", std::string(kApprovals)}}), &store, &redeemer);
  auto call = [&](std::string amount, std::string token) {
    return DecideVerified(e, R"({"agent":"fa","tool":"stripe","action":"pay","params":{"amount":)" +
                             amount + R"(},"override_token":")" + token + R"("})");
  };
  // Another call than the approved one: refused, and the token is not used up.
  Decision d = call("7001", "tok");
  EXPECT_EQ(d.outcome, Effect::kApprovalNeeded);
  EXPECT_EQ(d.reasons.back().code, reason::kOverrideInvalid);
  EXPECT_EQ(d.reasons.back().detail, "the token is for another call");
  EXPECT_FALSE(redeemer.used_);
  // The approved call: allowed once, counted by the limits.
  d = call("7000", "tok");
  EXPECT_EQ(d.outcome, Effect::kAllow);
  EXPECT_EQ(d.reasons[0].code, reason::kApproved);
  EXPECT_EQ(d.reasons[0].detail, "apr_1");
  EXPECT_EQ(d.approval_id, "apr_1");
  // Replayed: approval_needed again.
  d = call("7000", "tok");
  EXPECT_EQ(d.outcome, Effect::kApprovalNeeded);
  EXPECT_EQ(d.reasons.back().detail, "the token was used already");
  // A call the policy allows anyway leaves a token alone.
  redeemer.used_ = false;
  d = call("10", "tok");
  EXPECT_EQ(d.outcome, Effect::kDeny);  // the burst of 1 is used: rate limited ...
  EXPECT_EQ(d.reasons[0].code, reason::kRateLimited);
  EXPECT_FALSE(redeemer.used_);
  EXPECT_EQ(redeemer.released_, 0);
  // ... and so is the approved call now: the limit refuses it, and its token is given back.
  d = call("7000", "tok");
  EXPECT_EQ(d.reasons[0].code, reason::kRateLimited);
  EXPECT_EQ(redeemer.released_, 1);
  EXPECT_FALSE(redeemer.used_);
}

TEST_F(EngineTest, WithoutARedeemerOverrideTokensAreRefused) {
  Engine e(MustCompile({{"p.yaml", std::string(kApprovals)}}));
  Decision d = DecideVerified(
      e, R"({"agent":"fa","tool":"stripe","action":"pay","params":{"amount":7000},"override_token":"x"})");
  EXPECT_EQ(d.outcome, Effect::kApprovalNeeded);
  EXPECT_EQ(d.reasons.back().code, reason::kOverrideInvalid);
}

TEST_F(EngineTest, SanitizeReturnsTheRedactedParameters) {
  const std::string policy = R"(apiVersion: aegis/v1
kind: Policy
tools:
  ehr: {actions: {export: {}}}
agents:
  clinic: {tools: [ehr]}
rules:
  - id: strip-ids
    match: {tools: [ehr]}
    effect: sanitize
    redact: {fields: ["params.patient.ssn"], detectors: [email], style: mask}
  - id: strip-cards
    match: {tools: [ehr]}
    effect: sanitize
    redact: {detectors: [card], style: partial}
  - id: hashed
    match: {tools: [ehr]}
    if: has(params.hash)
    effect: sanitize
    redact: {fields: ["params.hash"], style: hash}
)";
  Engine e(MustCompile({{"p.yaml", policy}}), nullptr, nullptr, std::string(32, 'k'));
  Decision d = DecideJson(e, R"({"agent":"clinic","tool":"ehr","action":"export","params":
      {"patient":{"ssn":"123-45-6789","name":"Ann"},"note":"mail ann@example.com",
       "card":"4111 1111 1111 1111"}})");
  ASSERT_EQ(d.outcome, Effect::kSanitize);
  ASSERT_TRUE(d.sanitized_params);
  EXPECT_EQ(d.sanitized_params->Canonical(),
            R"({"card":"**** **** **** 1111","note":"mail [REDACTED:email]",)"
            R"("patient":{"name":"Ann","ssn":"[REDACTED]"}})");
  EXPECT_THAT(d.redacted_paths, ::testing::UnorderedElementsAre(
                                    "params.patient.ssn", "params.note", "params.card"));
  EXPECT_THAT(d.ToJson(), HasSubstr(R"("sanitized_params":{"card":"**** **** **** 1111")"));
  // A hash-style rule without a key cannot redact: the call is refused, not let through.
  Engine keyless(MustCompile({{"p.yaml", policy}}));
  d = DecideJson(keyless, R"({"agent":"clinic","tool":"ehr","action":"export","params":{"hash":"x"}})");
  EXPECT_EQ(d.outcome, Effect::kDeny);
  EXPECT_EQ(d.reasons[0].code, reason::kRedactionError);
}

}  // namespace
}  // namespace aegis::engine
