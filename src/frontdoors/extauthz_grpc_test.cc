#include "frontdoors/extauthz_grpc.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/engine.h"
#include "identity/keyring.h"
#include "service/identity.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policy/compiler.h"
#include "service/metrics.h"
#include "service/policy_store.h"

namespace aegis::frontdoors {
namespace {

using common::Json;
using common::StatusCode;
using ::testing::HasSubstr;
using HealthResponse = ::grpc::health::v1::HealthCheckResponse;

constexpr int64_t kNow = 1'780'000'000'000'000'000;

constexpr std::string_view kPolicy = R"(apiVersion: aegis/v1
kind: Policy
metadata: {name: extauthz}
tools:
  stripe:
    hosts: [api.stripe.com]
    actions:
      create_payment: {method: POST, path: /v1/payment_intents}
      get_payment: {method: GET, path: "/v1/payment_intents/{id}"}
  ehr:
    hosts: [ehr.internal]
    actions:
      export: {method: POST, path: /export}
      read: {method: GET, path: "/patients/{id}"}
agents:
  finance-agent: {tools: [stripe], allowed_domains: [api.stripe.com]}
  clinic-agent: {tools: [ehr], allowed_domains: ["*.internal"]}
rules:
  - id: big-payment
    match: {tools: [stripe], actions: [create_payment]}
    if: params.amount > 5000
    effect: approval_needed
  - id: no-rubles
    match: {tools: [stripe]}
    if: params.currency == "RUB"
    effect: deny
    message: no payments in RUB
  - id: payments
    match: {agents: [finance-agent], tools: [stripe]}
    effect: allow
  - id: phi
    match: {agents: [clinic-agent], tools: [ehr]}
    effect: sanitize
    redact: {detectors: [ssn]}
)";

// A CheckRequest as Envoy's HTTP ext_authz filter builds it: the HttpRequest fields plus the
// same values as pseudo-headers in the header map.
authv3::CheckRequest EnvoyRequest(std::string_view method, std::string_view authority,
                                  std::string_view path) {
  authv3::CheckRequest r;
  auto* http = r.mutable_attributes()->mutable_request()->mutable_http();
  http->set_id("1234567890");
  http->set_method(std::string(method));
  http->set_host(std::string(authority));
  http->set_path(std::string(path));
  http->set_scheme("https");
  http->set_protocol("HTTP/1.1");
  http->set_size(-1);
  for (auto [k, v] : {std::pair{":authority", authority},
                      {":method", method},
                      {":path", path},
                      {":scheme", std::string_view("https")},
                      {"user-agent", std::string_view("agent-sdk/1.0")},
                      {"x-request-id", std::string_view("1234567890")}}) {
    auto* h = http->add_headers();
    h->set_key(k);
    h->set_value(std::string(v));
  }
  return r;
}

void AddHeader(authv3::CheckRequest& r, std::string_view key, std::string_view value) {
  auto* h = r.mutable_attributes()->mutable_request()->mutable_http()->add_headers();
  h->set_key(std::string(key));
  h->set_value(std::string(value));
}

void SetJsonBody(authv3::CheckRequest& r, std::string_view body) {
  AddHeader(r, "content-type", "application/json");
  r.mutable_attributes()->mutable_request()->mutable_http()->set_body(std::string(body));
}

void SetAgent(authv3::CheckRequest& r, std::string_view agent) {
  (*r.mutable_attributes()->mutable_context_extensions())["agent"] = std::string(agent);
}

common::StatusOr<engine::CallContext> Map(const authv3::CheckRequest& r,
                                          const ExtAuthzOptions& options = {}) {
  return CallFromCheckRequest(r, kNow, options);
}

// --- CheckRequest -> CallContext ---

TEST(CallFromCheckRequestTest, EnvoyGetWithoutBody) {
  auto r = EnvoyRequest("GET", "API.Stripe.com:443", "/v1/payment_intents/pi_1?expand=customer");
  SetAgent(r, "finance-agent");
  auto call = Map(r);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->agent, "finance-agent");
  EXPECT_EQ(call->tenant, "");
  EXPECT_EQ(call->tool, "");  // resolved later, through the catalog
  EXPECT_EQ(call->method(), "GET");
  EXPECT_EQ(call->host(), "api.stripe.com");
  EXPECT_EQ(call->path(), "/v1/payment_intents/pi_1");
  EXPECT_EQ(call->request.Find("query")->Canonical(), R"({"expand":"customer"})");
  const Json* headers = call->request.Find("headers");
  ASSERT_NE(headers, nullptr);
  // Pseudo-headers went into their fields; ordinary headers stay.
  EXPECT_EQ(headers->Canonical(), R"({"user-agent":"agent-sdk/1.0","x-request-id":"1234567890"})");
  EXPECT_EQ(call->params.Canonical(), "{}");
  EXPECT_EQ(call->now_unix_nanos, kNow);
}

TEST(CallFromCheckRequestTest, JsonBodyBecomesParams) {
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  SetAgent(r, "finance-agent");
  SetJsonBody(r, R"({"amount": 7000, "currency": "usd"})");
  auto call = Map(r);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->params.Canonical(), R"({"amount":7000,"currency":"usd"})");
  EXPECT_EQ(call->request.Find("headers")->Find("content-type")->as_string(), "application/json");
}

TEST(CallFromCheckRequestTest, RawBodyWhenPackedAsBytes) {
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  SetAgent(r, "finance-agent");
  AddHeader(r, "content-type", "application/json; charset=utf-8");
  r.mutable_attributes()->mutable_request()->mutable_http()->set_raw_body(R"({"amount":1})");
  auto call = Map(r);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->params.Canonical(), R"({"amount":1})");
  EXPECT_TRUE(HasBody(r));
}

TEST(CallFromCheckRequestTest, NonJsonBodyIsNotRead) {
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  SetAgent(r, "finance-agent");
  AddHeader(r, "content-type", "application/x-www-form-urlencoded");
  r.mutable_attributes()->mutable_request()->mutable_http()->set_body("amount=7000");
  auto call = Map(r);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->params.Canonical(), "{}");
  EXPECT_TRUE(HasBody(r));  // so a sanitize decision still refuses it
}

TEST(CallFromCheckRequestTest, HintsFromContextExtensionsThenHeadersThenPrincipal) {
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  r.mutable_attributes()->mutable_source()->set_principal("spiffe-agent");
  auto call = Map(r);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->agent, "spiffe-agent");

  AddHeader(r, "x-aegis-agent", "header-agent");
  AddHeader(r, "X-Aegis-Tenant", "acme");
  AddHeader(r, "x-aegis-tool", "stripe");
  AddHeader(r, "x-aegis-action", "create_payment");
  call = Map(r);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->agent, "header-agent");
  EXPECT_EQ(call->tenant, "acme");
  EXPECT_EQ(call->tool, "stripe");
  EXPECT_EQ(call->action, "create_payment");
  // The hint headers name the call; they are not part of it.
  EXPECT_EQ(call->request.Find("headers")->Find("x-aegis-agent"), nullptr);

  auto& ext = *r.mutable_attributes()->mutable_context_extensions();
  ext["agent"] = "route-agent";
  ext["tenant"] = "globex";
  ext["unrelated"] = "ignored";
  call = Map(r);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->agent, "route-agent");
  EXPECT_EQ(call->tenant, "globex");
  EXPECT_EQ(call->tool, "stripe");  // not in the extensions: from the header
}

TEST(CallFromCheckRequestTest, RawHeaderMapJoinsRepeatedHeaders) {
  authv3::CheckRequest r;
  auto* http = r.mutable_attributes()->mutable_request()->mutable_http();
  http->set_method("GET");
  http->set_host("api.stripe.com");
  http->set_path("/v1/payment_intents/pi_1");
  for (auto [k, v] : {std::pair{":authority", "api.stripe.com"},
                      {"accept", "text/plain"},
                      {"accept", "application/json"}}) {
    auto* h = http->mutable_header_map()->add_headers();
    h->set_key(k);
    h->set_raw_value(v);
  }
  SetAgent(r, "finance-agent");
  auto call = Map(r);
  ASSERT_TRUE(call.ok()) << call.status();
  EXPECT_EQ(call->request.Find("headers")->Find("accept")->as_string(),
            "text/plain, application/json");
}

TEST(CallFromCheckRequestTest, NoAgentIsBadInput) {
  auto r = EnvoyRequest("GET", "api.stripe.com", "/v1/payment_intents/pi_1");
  auto call = Map(r);
  ASSERT_FALSE(call.ok());
  EXPECT_EQ(call.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(call.status().message(), HasSubstr("agent is required"));
}

struct HostileCase {
  std::string name;
  std::function<void(authv3::CheckRequest&)> mutate;
  std::string message;  // a part of the error
  StatusCode code = StatusCode::kInvalidArgument;
};

class HostileInputTest : public ::testing::TestWithParam<HostileCase> {};

TEST_P(HostileInputTest, IsRefusedNeverDecided) {
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  SetAgent(r, "finance-agent");
  GetParam().mutate(r);
  auto call = Map(r, ExtAuthzOptions{.json = {.max_bytes = 4096, .max_depth = 64}});
  ASSERT_FALSE(call.ok()) << "accepted: " << call->request.Canonical();
  EXPECT_EQ(call.status().code(), GetParam().code) << call.status();
  EXPECT_THAT(call.status().message(), HasSubstr(GetParam().message));
}

authv3::AttributeContext::HttpRequest& Http(authv3::CheckRequest& r) {
  return *r.mutable_attributes()->mutable_request()->mutable_http();
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HostileInputTest,
    ::testing::Values(
        HostileCase{"InvalidUtf8HeaderValue", [](auto& r) { AddHeader(r, "x-note", "caf\xc3"); },
                    "not valid UTF-8"},
        HostileCase{"OverlongUtf8HeaderValue", [](auto& r) { AddHeader(r, "x-note", "\xc0\xaf"); },
                    "not valid UTF-8"},
        HostileCase{"NewlineInHeaderValue",
                    [](auto& r) { AddHeader(r, "x-note", "a\r\nx-aegis-agent: root"); },
                    "control byte"},
        HostileCase{"InvalidHeaderName", [](auto& r) { AddHeader(r, "x note", "1"); },
                    "invalid header name"},
        HostileCase{"HeaderTwiceAfterLowerCasing",
                    [](auto& r) {
                      AddHeader(r, "X-Api-Key", "a");
                      AddHeader(r, "x-api-key", "b");
                    },
                    "given twice"},
        HostileCase{"DuplicateQueryKeys",
                    [](auto& r) {
                      Http(r).set_path("/v1/payment_intents?amount=1&amount=9999");
                      r.mutable_attributes()->mutable_request()->mutable_http()->clear_headers();
                    },
                    "given twice"},
        HostileCase{"PathDisagreesWithPseudoHeader",
                    [](auto& r) { Http(r).set_path("/v1/refunds"); }, "disagree"},
        HostileCase{"MethodDisagreesWithPseudoHeader", [](auto& r) { Http(r).set_method("GET"); },
                    "disagree"},
        HostileCase{"HostHeaderDisagreesWithAuthority",
                    [](auto& r) { AddHeader(r, "host", "evil.example"); }, "disagree"},
        HostileCase{"UserinfoInHost",
                    [](auto& r) {
                      Http(r).set_host("api.stripe.com@evil.example");
                      Http(r).clear_headers();
                    },
                    "request.host"},
        HostileCase{"DotSegments",
                    [](auto& r) {
                      Http(r).set_path("/v1/../admin");
                      Http(r).clear_headers();
                    },
                    "dot segment"},
        HostileCase{"EncodedSlash",
                    [](auto& r) {
                      Http(r).set_path("/v1%2fadmin");
                      Http(r).clear_headers();
                    },
                    "encoded"},
        HostileCase{"InvalidUtf8InPath",
                    [](auto& r) {
                      Http(r).set_path("/v1/\xff");
                      Http(r).clear_headers();
                    },
                    "UTF-8"},
        HostileCase{"InvalidJsonBody", [](auto& r) { SetJsonBody(r, R"({"amount": 1,)"); },
                    "body: line 1"},
        HostileCase{"DuplicateKeyInBody",
                    [](auto& r) { SetJsonBody(r, R"({"amount": 1, "amount": 9999})"); },
                    "duplicate key"},
        HostileCase{"InvalidUtf8InBody",
                    [](auto& r) { SetJsonBody(r, "{\"note\": \"\xed\xa0\x80\"}"); }, "UTF-8"},
        HostileCase{"LoneSurrogateInBody", [](auto& r) { SetJsonBody(r, R"({"note": "\ud800"})"); },
                    "surrogate"},
        HostileCase{"BodyNotAnObject", [](auto& r) { SetJsonBody(r, "[1, 2]"); },
                    "must be an object"},
        HostileCase{"TruncatedBody", [](auto& r) { SetJsonBody(r, R"({"amount": 70)"); }, "body:"},
        HostileCase{"DeepBody",
                    [](auto& r) { SetJsonBody(r, std::string(100, '[') + std::string(100, ']')); },
                    "body:"},
        HostileCase{
            "HugeBody",
            [](auto& r) { SetJsonBody(r, R"({"pad": ")" + std::string(8192, 'x') + R"("})"); },
            "body:", StatusCode::kResourceExhausted},
        HostileCase{"BodyAndRawBody",
                    [](auto& r) {
                      SetJsonBody(r, "{}");
                      Http(r).set_raw_body("{}");
                    },
                    "cannot both"},
        HostileCase{"InvalidAgentName", [](auto& r) { SetAgent(r, "agent with spaces"); },
                    "agent must be"},
        HostileCase{"InvalidUtf8Principal",
                    [](auto& r) {
                      r.mutable_attributes()->mutable_context_extensions()->clear();
                      r.mutable_attributes()->mutable_source()->set_principal("\xff");
                    },
                    "principal"},
        HostileCase{"NoHttpRequest",
                    [](auto& r) { r.mutable_attributes()->mutable_request()->clear_http(); },
                    "no HTTP request"}),
    [](const auto& info) { return info.param.name; });

// --- Decision -> CheckResponse ---

class ResponseTest : public ::testing::Test {
 protected:
  static std::shared_ptr<const policy::CompiledPolicy> Compile(std::string_view mode) {
    auto out = policy::CompileFiles(
        {{"p.yaml", std::string(kPolicy) + "mode: " + std::string(mode) + "\n"}}, "test");
    EXPECT_TRUE(out.policy);
    return out.policy;
  }
  engine::Decision Decide(const authv3::CheckRequest& r, std::string_view mode = "enforce") {
    engine::Engine engine(Compile(mode));
    auto call = Map(r);
    EXPECT_TRUE(call.ok()) << call.status();
    return engine.Decide(*call);
  }
  static std::map<std::string, std::string> Headers(
      const google::protobuf::RepeatedPtrField<envoy::config::core::v3::HeaderValueOption>& hs) {
    std::map<std::string, std::string> out;
    for (const auto& h : hs) {
      EXPECT_TRUE(h.has_append() && !h.append().value()) << h.header().key() << " may append";
      out[h.header().key()] = h.header().value();
    }
    return out;
  }
};

TEST_F(ResponseTest, AllowIsOkWithDecisionHeaders) {
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  SetAgent(r, "finance-agent");
  SetJsonBody(r, R"({"amount": 120, "currency": "usd"})");
  engine::Decision d = Decide(r);
  ASSERT_EQ(d.outcome, policy::Effect::kAllow);
  authv3::CheckResponse out;
  DecisionToCheckResponse(d, HasBody(r), 200, &out);
  EXPECT_EQ(out.status().code(), 0);
  ASSERT_TRUE(out.has_ok_response());
  auto headers = Headers(out.ok_response().headers());
  EXPECT_EQ(headers["x-aegis-decision"], "allow");
  EXPECT_EQ(headers["x-aegis-decision-id"], std::string(d.id_view()));
  EXPECT_EQ(headers["x-aegis-policy-version"], d.policy->version);
  EXPECT_FALSE(d.policy->version.empty());
  EXPECT_EQ(headers["x-aegis-enforced"], "true");
  EXPECT_EQ(Headers(out.ok_response().response_headers_to_add()), headers);
}

TEST_F(ResponseTest, DenyIsPermissionDenied403WithDecisionJson) {
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  SetAgent(r, "finance-agent");
  SetJsonBody(r, R"({"amount": 10, "currency": "RUB"})");
  engine::Decision d = Decide(r);
  ASSERT_EQ(d.outcome, policy::Effect::kDeny);
  authv3::CheckResponse out;
  DecisionToCheckResponse(d, HasBody(r), 403, &out);
  EXPECT_EQ(out.status().code(), 7);
  EXPECT_THAT(out.status().message(), HasSubstr("no-rubles"));
  ASSERT_TRUE(out.has_denied_response());
  EXPECT_EQ(out.denied_response().status().code(), 403);
  auto headers = Headers(out.denied_response().headers());
  EXPECT_EQ(headers["content-type"], "application/json");
  EXPECT_EQ(headers["x-aegis-decision"], "deny");
  EXPECT_EQ(headers["x-aegis-decision-id"], std::string(d.id_view()));
  auto body = common::ParseJson(out.denied_response().body());
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(body->Find("decision")->as_string(), "deny");
  EXPECT_EQ(body->Find("decision_id")->as_string(), std::string(d.id_view()));
  EXPECT_EQ(out.denied_response().body(), d.ToJson());
}

TEST_F(ResponseTest, ApprovalNeededIsRefused) {
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  SetAgent(r, "finance-agent");
  SetJsonBody(r, R"({"amount": 7000, "currency": "usd"})");
  engine::Decision d = Decide(r);
  ASSERT_EQ(d.outcome, policy::Effect::kApprovalNeeded);
  authv3::CheckResponse out;
  DecisionToCheckResponse(d, HasBody(r), 403, &out);
  EXPECT_EQ(out.status().code(), 7);
  EXPECT_EQ(out.denied_response().status().code(), 403);
  EXPECT_EQ(Headers(out.denied_response().headers())["x-aegis-decision"], "approval_needed");
}

TEST_F(ResponseTest, RefusalIsNever2xxWhateverTheCallerPasses) {
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  SetAgent(r, "finance-agent");
  SetJsonBody(r, R"({"amount": 10, "currency": "RUB"})");
  authv3::CheckResponse out;
  DecisionToCheckResponse(Decide(r), true, 200, &out);
  EXPECT_EQ(out.status().code(), 7);
  EXPECT_EQ(out.denied_response().status().code(), 403);
}

TEST_F(ResponseTest, SanitizeWithABodyThatNeedsNoChangeIsAllowed) {
  auto r = EnvoyRequest("POST", "ehr.internal", "/export");
  SetAgent(r, "clinic-agent");
  SetJsonBody(r, R"({"format": "csv", "ward": 7})");
  engine::Decision d = Decide(r);
  ASSERT_EQ(d.outcome, policy::Effect::kSanitize);
  ASSERT_TRUE(d.sanitized_params);
  EXPECT_TRUE(d.redacted_paths.empty());
  authv3::CheckResponse out;
  DecisionToCheckResponse(d, HasBody(r), 200, &out);
  EXPECT_EQ(out.status().code(), 0);
  EXPECT_TRUE(out.has_ok_response());
}

TEST_F(ResponseTest, SanitizeWithBodyIsRefusedAsUnsupported) {
  auto r = EnvoyRequest("POST", "ehr.internal", "/export");
  SetAgent(r, "clinic-agent");
  SetJsonBody(r, R"({"ssn": "078-05-1120"})");
  engine::Decision d = Decide(r);
  ASSERT_EQ(d.outcome, policy::Effect::kSanitize);
  authv3::CheckResponse out;
  DecisionToCheckResponse(d, HasBody(r), 200, &out);
  EXPECT_EQ(out.status().code(), 7);
  EXPECT_EQ(out.status().message(), "sanitize_unsupported");
  ASSERT_TRUE(out.has_denied_response());
  EXPECT_EQ(out.denied_response().status().code(), 403);
  EXPECT_EQ(Headers(out.denied_response().headers())["x-aegis-decision"], "sanitize");
  auto body = common::ParseJson(out.denied_response().body());
  ASSERT_TRUE(body.ok()) << body.status() << "\n" << out.denied_response().body();
  EXPECT_EQ(body->Find("decision")->as_string(), "sanitize");
  EXPECT_EQ(body->Find("error")->Find("code")->as_string(), "sanitize_unsupported");
}

TEST_F(ResponseTest, SanitizeWithoutBodyNeedsNoChangeAndIsAllowed) {
  auto r = EnvoyRequest("GET", "ehr.internal", "/patients/17");
  SetAgent(r, "clinic-agent");
  engine::Decision d = Decide(r);
  ASSERT_EQ(d.outcome, policy::Effect::kSanitize);
  authv3::CheckResponse out;
  DecisionToCheckResponse(d, HasBody(r), 200, &out);
  EXPECT_EQ(out.status().code(), 0);
  EXPECT_EQ(Headers(out.ok_response().headers())["x-aegis-decision"], "sanitize");
}

TEST_F(ResponseTest, ShadowModeLetsADenyThroughAndSaysSo) {
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  SetAgent(r, "finance-agent");
  SetJsonBody(r, R"({"amount": 10, "currency": "RUB"})");
  engine::Decision d = Decide(r, "shadow");
  ASSERT_EQ(d.outcome, policy::Effect::kDeny);
  authv3::CheckResponse out;
  DecisionToCheckResponse(d, HasBody(r), 200, &out);
  EXPECT_EQ(out.status().code(), 0);
  auto headers = Headers(out.ok_response().headers());
  EXPECT_EQ(headers["x-aegis-decision"], "deny");
  EXPECT_EQ(headers["x-aegis-enforced"], "false");
}

TEST(ErrorResponseTest, BadInputIsInvalidArgumentNeverOk) {
  authv3::CheckResponse out;
  BadInputToCheckResponse(common::InvalidArgumentError("header \"x\" is given twice"), &out);
  EXPECT_EQ(out.status().code(), 3);
  EXPECT_EQ(out.status().message(), "header \"x\" is given twice");
  ASSERT_TRUE(out.has_denied_response());
  EXPECT_EQ(out.denied_response().status().code(), 400);
  auto body = common::ParseJson(out.denied_response().body());
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(body->Find("error")->Find("code")->as_string(), "invalid_call");

  out.Clear();
  BadInputToCheckResponse(common::ResourceExhaustedError("body: too large"), &out);
  EXPECT_EQ(out.status().code(), 3);
  EXPECT_EQ(out.denied_response().status().code(), 413);

  out.Clear();
  NotReadyToCheckResponse(&out);
  EXPECT_EQ(out.status().code(), 14);
  EXPECT_EQ(out.denied_response().status().code(), 503);
}

// --- The server, over the wire ---

class TempBundle {
 public:
  explicit TempBundle(std::string_view text) {
    static int counter = 0;
    dir_ = std::filesystem::temp_directory_path() /
           ("aegis-extauthz-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "p.yaml") << text;
  }
  ~TempBundle() { std::filesystem::remove_all(dir_); }
  std::string path() const { return dir_.string(); }

 private:
  std::filesystem::path dir_;
};

class ServerTest : public ::testing::Test {
 protected:
  ServerTest() : bundle_(kPolicy), store_(bundle_.path()), decider_(store_, metrics_) {}

  void Start() {
    auto server = StartGrpcServer("127.0.0.1:0", decider_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                       grpc::InsecureChannelCredentials());
    authz_ = authv3::Authorization::NewStub(channel);
    health_ = ::grpc::health::v1::Health::NewStub(channel);
  }

  grpc::Status Check(const authv3::CheckRequest& r, authv3::CheckResponse* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return authz_->Check(&ctx, r, out);
  }

  HealthResponse::ServingStatus Health() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ::grpc::health::v1::HealthCheckRequest req;
    HealthResponse resp;
    grpc::Status st = health_->Check(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp.status();
  }

  TempBundle bundle_;
  service::PolicyStore store_;
  service::Metrics metrics_;
  service::Decider decider_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<authv3::Authorization::Stub> authz_;
  std::unique_ptr<::grpc::health::v1::Health::Stub> health_;
};

TEST_F(ServerTest, NotReadyUntilAPolicyIsLoadedThenDecides) {
  Start();
  EXPECT_EQ(Health(), HealthResponse::NOT_SERVING);
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  SetAgent(r, "finance-agent");
  SetJsonBody(r, R"({"amount": 120, "currency": "usd"})");
  authv3::CheckResponse out;
  ASSERT_TRUE(Check(r, &out).ok());
  EXPECT_EQ(out.status().code(), 14);  // fails closed
  EXPECT_EQ(out.denied_response().status().code(), 503);

  ASSERT_TRUE(store_.Reload().ok());
  EXPECT_EQ(Health(), HealthResponse::SERVING);
  out.Clear();
  ASSERT_TRUE(Check(r, &out).ok());
  EXPECT_EQ(out.status().code(), 0);
  EXPECT_TRUE(out.has_ok_response());

  SetJsonBody(r, R"({"amount": 7000, "currency": "usd"})");
  r.mutable_attributes()->mutable_request()->mutable_http()->mutable_headers()->RemoveLast();
  out.Clear();
  ASSERT_TRUE(Check(r, &out).ok());
  EXPECT_EQ(out.status().code(), 7);
  EXPECT_EQ(out.denied_response().status().code(), 403);
}

TEST_F(ServerTest, InvalidUtf8OnTheWireIsADenialNotATransportError) {
  ASSERT_TRUE(store_.Reload().ok());
  Start();
  auto r = EnvoyRequest("GET", "api.stripe.com", "/v1/payment_intents/pi_1");
  SetAgent(r, "finance-agent");
  // What Envoy sends for a client header it does not check, in a field Envoy types `string`:
  // a parser that refused it would fail the call, and failure_mode_allow could let it through.
  AddHeader(r, "x-note", "\xff\xfe");
  authv3::CheckResponse out;
  grpc::Status st = Check(r, &out);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(out.status().code(), 3);
  EXPECT_EQ(out.denied_response().status().code(), 400);
  EXPECT_THAT(
      metrics_.Render(),
      HasSubstr(std::string("aegis_bad_requests_total{front_door=\"") +
                std::string(service::FrontDoorName(service::FrontDoor::kExtAuthzGrpc)) + "\"} 1"));
}

TEST_F(ServerTest, AgentTokensComeInXAegisTokenAndBindTheCall) {
  ASSERT_TRUE(store_.Reload().ok());
  std::filesystem::path keys = std::filesystem::path(bundle_.path()) / "keys";
  auto keyring = identity::Keyring::Open(keys.string(), 1'780'000'000);
  ASSERT_TRUE(keyring.ok()) << keyring.status();
  service::IdentityOptions options;
  options.require_agent_token = true;
  service::Identity id(std::move(*keyring), options, nullptr,
                       [](std::string_view, const std::string&) {});
  GrpcServerOptions grpc_options;
  grpc_options.identity = &id;
  auto server = StartGrpcServer("127.0.0.1:0", decider_, grpc_options);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = authv3::Authorization::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string((*server)->port()), grpc::InsecureChannelCredentials()));
  auto check = [&](const authv3::CheckRequest& r) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    authv3::CheckResponse out;
    EXPECT_TRUE(stub->Check(&ctx, r, &out).ok());
    return out;
  };
  int64_t now = service::Decider::NowUnixNanos() / 1'000'000'000;
  auto token = id.IssueAgentToken("finance-agent", "", 600, now);
  ASSERT_TRUE(token.ok()) << token.status();

  // No token: 401. The agent named by the token, from x-aegis-token: decided.
  auto r = EnvoyRequest("POST", "api.stripe.com", "/v1/payment_intents");
  SetJsonBody(r, R"({"amount": 120, "currency": "usd"})");
  authv3::CheckResponse out = check(r);
  EXPECT_EQ(out.status().code(), 16);
  EXPECT_EQ(out.denied_response().status().code(), 401);
  AddHeader(r, "x-aegis-token", *token);
  out = check(r);
  EXPECT_EQ(out.status().code(), 0) << out.denied_response().body();
  // A tampered token, and a call claiming another agent than its token.
  auto bad = EnvoyRequest("GET", "api.stripe.com", "/v1/payment_intents/pi_1");
  AddHeader(bad, "x-aegis-token", *token + "x");
  EXPECT_EQ(check(bad).denied_response().status().code(), 401);
  SetAgent(r, "clinic-agent");
  out = check(r);
  EXPECT_EQ(out.status().code(), 7);
  EXPECT_THAT(out.denied_response().body(), HasSubstr("identity_mismatch"));
  (*server)->Shutdown(std::chrono::milliseconds(0));
}

TEST_F(ServerTest, PortInUseIsAnError) {
  Start();
  auto second = StartGrpcServer("127.0.0.1:" + std::to_string(server_->port()), decider_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("cannot listen"));
  auto bad = StartGrpcServer("256.1.1.1:1", decider_);
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace aegis::frontdoors
