#include "frontdoors/http_api.h"

#include <filesystem>
#include <fstream>

#include "common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "limits/memory_store.h"

namespace aegis::frontdoors {
namespace {

namespace http = boost::beast::http;
using ::testing::HasSubstr;
using ::testing::Not;

class HttpApiTest : public ::testing::Test {
 protected:
  HttpApiTest()
      : store_("examples/quickstart"),
        decider_(store_, metrics_),
        api_(decider_, store_, [this] { return store_.Reload(); }, 4096) {
    EXPECT_TRUE(store_.Reload().ok());
  }

  net::HttpResponse Send(http::verb method, std::string target, std::string body = "",
                         std::vector<std::pair<std::string, std::string>> headers = {
                             {"content-type", "application/json"}}) {
    net::HttpRequest req{method, target, 11};
    for (auto& [k, v] : headers) req.set(k, v);
    req.body() = std::move(body);
    req.prepare_payload();
    net::HttpResponse resp;
    resp.result(http::status::ok);
    api_.Handle(req, resp);
    return resp;
  }

  static common::Json Body(const net::HttpResponse& r) {
    auto j = common::ParseJson(r.body());
    EXPECT_TRUE(j.ok()) << r.body();
    return j.ok() ? *j : common::Json();
  }

  service::PolicyStore store_;
  service::Metrics metrics_;
  service::Decider decider_;
  HttpApi api_;
};

TEST_F(HttpApiTest, DecideAnswersWithStatusHeadersAndDecision) {
  auto r = Send(http::verb::post, "/v1/decide",
                R"({"agent":"finance-agent","tool":"stripe","action":"create_payment",
                    "params":{"amount":120}})");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r["x-aegis-decision"], "allow");
  EXPECT_EQ(r["x-aegis-policy-version"], store_.Active()->policy().version);
  EXPECT_EQ(r["x-aegis-decision-id"].size(), 36u);
  EXPECT_EQ(Body(r).Find("decision")->as_string(), "allow");

  r = Send(http::verb::post, "/v1/decide",
           R"({"agent":"finance-agent","tool":"stripe","action":"create_payment",
               "params":{"amount":7000}})");
  EXPECT_EQ(r.result_int(), 403);
  EXPECT_EQ(r["x-aegis-decision"], "approval_needed");
  EXPECT_EQ(Body(r).Find("reasons")->as_array()[0].Find("rule")->as_string(), "payment-ceiling");
}

// /v1/offers lists the actions an agent could be allowed; /v1/fail-open decides and records
// calls an SDK ran while Aegis was down, all or nothing.
TEST_F(HttpApiTest, OffersAndFailOpenReports) {
  auto r = Send(http::verb::post, "/v1/offers",
                R"({"agent":"finance-agent","tool":"stripe",
                    "actions":["create_payment","get_payment","teleport"]})");
  EXPECT_EQ(r.result_int(), 200) << r.body();
  EXPECT_EQ(r.body(), R"({"offered":["create_payment","get_payment"]})");
  r = Send(http::verb::post, "/v1/offers",
           R"({"agent":"intern-bot","tool":"stripe","actions":["create_payment"]})");
  EXPECT_EQ(r.body(), R"({"offered":[]})");
  EXPECT_EQ(Send(http::verb::post, "/v1/offers", R"({"agent":"a","tool":"t"})").result_int(), 400);

  r = Send(http::verb::post, "/v1/fail-open",
           R"({"calls":[{"agent":"finance-agent","tool":"stripe","action":"create_payment",
                         "params":{"amount":120}},
                        {"agent":"finance-agent","tool":"stripe","action":"create_payment",
                         "params":{"amount":7000}}]})");
  ASSERT_EQ(r.result_int(), 200) << r.body();
  const common::Json body = Body(r);
  ASSERT_EQ(body.Find("decisions")->as_array().size(), 2u);
  EXPECT_EQ(body.Find("decisions")->as_array()[0].Find("decision")->as_string(), "allow");
  EXPECT_EQ(body.Find("decisions")->as_array()[1].Find("decision")->as_string(),
            "approval_needed");
  EXPECT_THAT(metrics_.Render(), HasSubstr("front_door=\"fail_open_report\",decision=\"allow\""));
  // One bad call refuses the whole report: nothing of it is recorded.
  r = Send(http::verb::post, "/v1/fail-open",
           R"({"calls":[{"agent":"finance-agent","tool":"stripe","action":"create_payment"},
                        {"agent":"finance agent"}]})");
  EXPECT_EQ(r.result_int(), 400);
  EXPECT_THAT(r.body(), HasSubstr("call 1"));
  EXPECT_EQ(Send(http::verb::post, "/v1/fail-open", R"({"calls":{}})").result_int(), 400);
}

TEST_F(HttpApiTest, BadRequestsGetJsonErrorsAndNeverADecision) {
  struct Case {
    http::verb method;
    std::string target, body, content_type;
    int status;
    std::string code;
  } cases[] = {
      {http::verb::post, "/v1/decide", R"({"agent":"a","agent":"b","tool":"t"})",
       "application/json", 400, "invalid_call"},
      {http::verb::post, "/v1/decide", "not json", "application/json", 400, "invalid_call"},
      {http::verb::post, "/v1/decide", R"({"agent":"a","tool":"t"})", "text/plain", 415,
       "unsupported_media_type"},
      {http::verb::post, "/v1/decide", std::string(5000, ' ') + "{}", "application/json", 413,
       "invalid_call"},
      {http::verb::get, "/v1/decide", "", "application/json", 405, "method_not_allowed"},
      {http::verb::get, "/nope", "", "application/json", 404, "not_found"},
      {http::verb::post, "/v1/policy/rollback", "{}", "application/json", 400,
       "invalid_request"},
  };
  for (const auto& c : cases) {
    auto r = Send(c.method, c.target, c.body, {{"content-type", c.content_type}});
    EXPECT_EQ(r.result_int(), c.status) << c.target << " " << c.body.substr(0, 40);
    EXPECT_EQ(Body(r).Find("error")->Find("code")->as_string(), c.code);
    EXPECT_EQ(r["x-aegis-decision"], "");
  }
}

TEST_F(HttpApiTest, NginxAuthRequestShape) {
  // nginx sends no body: the payment amount is unknown, so the approval rule's condition errs
  // and fails safe; reading a payment needs no amount.
  auto r = Send(http::verb::get, "/v1/authz", "",
                {{"x-original-uri", "/v1/payment_intents"},
                 {"x-original-method", "POST"},
                 {"x-original-host", "api.stripe.com"},
                 {"x-aegis-agent", "finance-agent"}});
  EXPECT_EQ(r.result_int(), 403);
  EXPECT_EQ(Body(r).Find("reasons")->as_array()[0].Find("code")->as_string(), "condition_error");
  r = Send(http::verb::get, "/v1/authz", "",
           {{"x-original-uri", "/v1/payment_intents/pi_123?expand=customer"},
            {"x-original-method", "GET"},
            {"x-original-host", "api.stripe.com"},
            {"x-aegis-agent", "finance-agent"}});
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(r["x-aegis-decision"], "allow");
  EXPECT_TRUE(r.body().empty());
  r = Send(http::verb::get, "/v1/authz", "",
           {{"x-original-uri", "/v1/payment_intents"},
            {"x-original-method", "POST"},
            {"x-original-host", "api.stripe.com"},
            {"x-aegis-agent", "intern-bot"}});
  EXPECT_EQ(r.result_int(), 403);
  EXPECT_EQ(Body(r).Find("reasons")->as_array()[0].Find("code")->as_string(), "unknown_agent");
  // A hostile original URI is bad input, not a decision.
  r = Send(http::verb::get, "/v1/authz", "",
           {{"x-original-uri", "/v1/../admin"}, {"x-original-host", "api.stripe.com"},
            {"x-aegis-agent", "finance-agent"}});
  EXPECT_EQ(r.result_int(), 400);
}

TEST_F(HttpApiTest, EnvoyHttpExtAuthzShapeWithBody) {
  auto r = Send(http::verb::post, "/v1/authz/v1/payment_intents", R"({"amount":7000})",
                {{"host", "api.stripe.com"},
                 {"content-type", "application/json"},
                 {"x-aegis-agent", "finance-agent"}});
  EXPECT_EQ(r.result_int(), 403);
  EXPECT_EQ(r["x-aegis-decision"], "approval_needed");
  r = Send(http::verb::post, "/v1/authz/v1/payment_intents", R"([1])",
           {{"host", "api.stripe.com"},
            {"content-type", "application/json"},
            {"x-aegis-agent", "finance-agent"}});
  EXPECT_EQ(r.result_int(), 400);
}

// The quickstart served with `limits` as its limit store.
class LimitsApi {
 public:
  explicit LimitsApi(limits::LimitStore& limits)
      : store_("examples/quickstart", 10, &limits),
        loaded_(store_.Reload()),
        decider_(store_, metrics_),
        api_(decider_, store_, [&] { return store_.Reload(); }, 4096) {}

  bool loaded() const { return loaded_.ok(); }

  net::HttpResponse Send(http::verb method, std::string target, std::string body) {
    net::HttpRequest req{method, target, 11};
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
    req.prepare_payload();
    net::HttpResponse resp;
    api_.Handle(req, resp);
    return resp;
  }

 private:
  service::PolicyStore store_;
  common::Status loaded_;
  service::Metrics metrics_;
  service::Decider decider_;
  HttpApi api_;
};

TEST(HttpApiLimitsTest, RateLimitsBudgetsUsageAndSpend) {
  limits::MemoryLimitStore limit_store;
  LimitsApi api(limit_store);
  ASSERT_TRUE(api.loaded());
  auto send = [&](http::verb method, std::string target, std::string body) {
    return api.Send(method, std::move(target), std::move(body));
  };
  // quickstart: finance-agent may make 5 calls/s with a burst of 10, and spend $50 a day.
  const std::string pay = R"({"agent":"finance-agent","tool":"stripe","action":"create_payment",
                              "params":{"amount":120},"cost_usd":4.5})";
  std::string first_id;
  int allowed = 0, limited = 0, broke = 0;
  for (int i = 0; i < 12; ++i) {
    auto r = send(http::verb::post, "/v1/decide", pay);
    if (r.result_int() == 200) {
      ++allowed;
      if (first_id.empty()) first_id = r["x-aegis-decision-id"];
    } else if (r.result_int() == 429) {
      ++limited;
      EXPECT_FALSE(r["retry-after"].empty());
    } else if (r.result_int() == 402) {
      ++broke;
      EXPECT_THAT(r.body(), HasSubstr("budget_exceeded"));
    }
  }
  EXPECT_EQ(allowed, 10);  // the burst; $45 spent
  EXPECT_EQ(limited, 2);
  auto spend = send(http::verb::get, "/v1/spend?prefix=agent/", "");
  EXPECT_THAT(spend.body(), HasSubstr(R"("key":"agent//finance-agent")"));
  EXPECT_THAT(spend.body(), HasSubstr(R"("spent_usd":45,"limit_usd":50)"));
  // Settle the first call at its actual cost; settling again or an unknown id is refused.
  auto settle = [&](std::string id, std::string cost) {
    return send(http::verb::post, "/v1/usage",
                R"({"decision_id":")" + id + R"(","cost_usd":)" + cost + "}");
  };
  // Another tenant's usage report finds nothing to settle.
  EXPECT_EQ(send(http::verb::post, "/v1/usage",
                 R"({"decision_id":")" + first_id + R"(","cost_usd":0,"tenant":"globex"})")
                .result_int(),
            404);
  EXPECT_EQ(settle(first_id, "0.5").result_int(), 200);
  EXPECT_EQ(settle(first_id, "0.5").result_int(), 409);
  EXPECT_EQ(settle("00000000-0000-7000-8000-000000000000", "1").result_int(), 404);
  EXPECT_EQ(settle(first_id, "-1").result_int(), 400);
  EXPECT_EQ(settle(first_id, R"("1")").result_int(), 400);
  spend = send(http::verb::get, "/v1/spend", "");
  EXPECT_THAT(spend.body(), HasSubstr(R"("spent_usd":41,"limit_usd":50,"remaining_usd":9)"));
  (void)broke;

  // Filters by agent, scope and window; unknown filters are refused.
  spend = send(http::verb::get, "/v1/spend?agent=finance-agent&window=day&scope=agent", "");
  EXPECT_EQ(spend.result_int(), 200);
  EXPECT_THAT(spend.body(), HasSubstr(R"("scope":"agent","agent":"finance-agent","window":"day")"));
  spend = send(http::verb::get, "/v1/spend?agent=nobody", "");
  EXPECT_EQ(spend.body(), R"({"budgets":[]})");
  spend = send(http::verb::get, "/v1/spend?colour=red", "");
  EXPECT_EQ(spend.result_int(), 400);

  // Spend and what is left, as Prometheus gauges.
  auto metrics_text = send(http::verb::get, "/metrics", "").body();
  EXPECT_THAT(metrics_text,
              HasSubstr(R"(aegis_budget_remaining_usd{scope="agent",tenant="",)"
                        R"(agent="finance-agent",tool="",rule="",window="day"} 9)"));
  EXPECT_THAT(metrics_text, HasSubstr(R"(aegis_budget_limit_usd{scope="agent")"));
}

// A shared limit store that cannot be reached, as the engine and the API see it.
class UnreachableStore : public limits::LimitStore {
 public:
  limits::Outcome Admit(const limits::Charge&) override {
    limits::Outcome o;
    o.result = limits::Outcome::Result::kUnavailable;
    return o;
  }
  common::Status Settle(std::string_view, limits::Micros, int64_t, std::string_view) override {
    return common::UnavailableError("redis: Connection refused");
  }
  common::StatusOr<std::vector<limits::SpendRow>> Spend(std::string_view, int64_t) override {
    return common::UnavailableError("redis: Connection refused");
  }
  common::StatusOr<bool> ConsumeOnce(std::string_view, int64_t, int64_t) override {
    return common::UnavailableError("redis: Connection refused");
  }
  void Unconsume(std::string_view) override {}
};

TEST(HttpApiLimitsTest, AnUnreachableStoreIs503ForCallsWithLimitsOnly) {
  UnreachableStore limit_store;
  LimitsApi api(limit_store);
  ASSERT_TRUE(api.loaded());
  auto send = [&](http::verb method, std::string target, std::string body) {
    return api.Send(method, std::move(target), std::move(body));
  };
  auto r = send(http::verb::post, "/v1/decide",
                R"({"agent":"finance-agent","tool":"stripe","action":"create_payment",
                    "params":{"amount":120}})");
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_EQ(r["x-aegis-decision"], "deny");
  EXPECT_THAT(r.body(), HasSubstr(R"("reasons":[{"code":"limits_unavailable"})"));
  // A call the policy does not let happen never reaches the store.
  r = send(http::verb::post, "/v1/decide",
           R"({"agent":"finance-agent","tool":"stripe","action":"create_payment",
               "params":{"amount":7000}})");
  EXPECT_EQ(r.result_int(), 403) << r.body();
  EXPECT_THAT(r.body(), HasSubstr(R"("decision":"approval_needed")"));
  r = send(http::verb::post, "/v1/usage", R"({"decision_id":"x","cost_usd":1})");
  EXPECT_EQ(r.result_int(), 503);
  EXPECT_THAT(r.body(), HasSubstr("limits_unavailable"));
  EXPECT_EQ(send(http::verb::get, "/v1/spend", "").result_int(), 503);
  // /metrics still answers, without spend series.
  r = send(http::verb::get, "/metrics", "");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_THAT(r.body(), Not(HasSubstr("aegis_budget_spent_usd")));
}

TEST_F(HttpApiTest, PolicyEndpointsAndHealth) {
  auto r = Send(http::verb::get, "/v1/policy");
  EXPECT_EQ(Body(r).Find("name")->as_string(), "quickstart");
  EXPECT_TRUE(Body(r).Find("last_error")->is_null());
  r = Send(http::verb::get, "/v1/policy/versions");
  EXPECT_EQ(Body(r).Find("versions")->as_array().size(), 1u);
  r = Send(http::verb::post, "/v1/policy/rollback", R"({"version":"0000"})");
  EXPECT_EQ(r.result_int(), 404);
  r = Send(http::verb::post, "/v1/policy/reload");
  EXPECT_EQ(r.result_int(), 200);
  EXPECT_EQ(Send(http::verb::get, "/healthz").result_int(), 200);
  EXPECT_EQ(Send(http::verb::get, "/readyz").result_int(), 200);
  Send(http::verb::post, "/v1/decide", R"({"agent":"finance-agent","tool":"stripe",
                                           "action":"create_payment"})");
  r = Send(http::verb::get, "/metrics");
  EXPECT_THAT(r.body(), HasSubstr("aegis_decisions_total{front_door=\"decide_api\""));
  EXPECT_THAT(r.body(), HasSubstr("aegis_policy_info{name=\"quickstart\""));
}

}  // namespace
}  // namespace aegis::frontdoors
