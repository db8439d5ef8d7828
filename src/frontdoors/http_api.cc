#include "frontdoors/http_api.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <optional>

#include "common/json.h"
#include "common/strings.h"
#include "expr/time_util.h"
#include "policy/compiler.h"
#include "frontdoors/headers.h"

namespace aegis::frontdoors {

namespace http = boost::beast::http;
using common::Json;
using common::StrCat;
using service::FrontDoor;

namespace {

constexpr std::string_view kAuthzPrefix = "/v1/authz";

// The caller's W3C trace context; bounded, parsed (strictly) by the tracing code.
std::string_view TraceparentOf(const net::HttpRequest& request) {
  auto it = request.find("traceparent");
  if (it == request.end() || it->value().size() > 128) return {};
  return it->value();
}

}  // namespace

bool IsJson(const net::HttpRequest& request) {
  auto it = request.find(http::field::content_type);
  if (it == request.end()) return false;
  std::string type = LowerAscii(it->value());
  return type == "application/json" || type.rfind("application/json;", 0) == 0;
}

std::string Timestamp(int64_t unix_nanos) {
  std::string out;
  expr::internal::AppendTimestamp(out, unix_nanos);
  return out;
}


void JsonBody(int status, std::string body, net::HttpResponse& response) {
  response.result(static_cast<unsigned>(status));
  response.set(http::field::content_type, "application/json");
  response.body() = std::move(body);
}

void ErrorResponse(int status, std::string_view code, std::string_view message,
                   net::HttpResponse& response) {
  std::string body = "{\"error\":{\"code\":";
  common::AppendJsonString(body, code);
  body += ",\"message\":";
  common::AppendJsonString(body, common::IsValidUtf8(message) ? message : "invalid request");
  body += "}}";
  JsonBody(status, std::move(body), response);
}

HttpApi::HttpApi(const service::Decider& decider, service::PolicyStore& store,
                 std::function<common::Status()> reload, size_t max_body_bytes,
                 const service::Identity* identity)
    : decider_(decider),
      store_(store),
      reload_(std::move(reload)),
      max_body_bytes_(max_body_bytes),
      identity_(identity) {}

void HttpApi::Handle(const net::HttpRequest& request, net::HttpResponse& response) const {
  std::string_view target = request.target();
  std::string_view path = target.substr(0, target.find('?'));
  http::verb method = request.method();
  auto only = [&](http::verb allowed, const char* allow) {
    if (method == allowed) return true;
    response.set(http::field::allow, allow);
    ErrorResponse(405, "method_not_allowed", StrCat(path, " accepts ", allow), response);
    return false;
  };
  if (path == kAuthzPrefix || path.rfind(StrCat(kAuthzPrefix, "/"), 0) == 0) {
    return Authorize(request, response);
  }
  if (path == "/.well-known/jwks.json") {
    if (only(http::verb::get, "GET")) Jwks(response);
    return;
  }
  if (path == "/v1/tokens") {
    if (only(http::verb::post, "POST")) Tokens(request, response);
    return;
  }
  if (path == "/v1/approvals" || path.rfind("/v1/approvals/", 0) == 0) {
    return Approvals(request, path, response);
  }
  if (path == "/v1/decide") {
    if (only(http::verb::post, "POST")) Decide(request, response);
    return;
  }
  if (path == "/v1/fail-open") {
    if (only(http::verb::post, "POST")) FailOpenReport(request, response);
    return;
  }
  if (path == "/v1/offers") {
    if (only(http::verb::post, "POST")) Offers(request, response);
    return;
  }
  if (path == "/healthz") {
    if (only(http::verb::get, "GET")) JsonBody(200, R"({"status":"ok"})", response);
    return;
  }
  if (path == "/readyz") {
    if (!only(http::verb::get, "GET")) return;
    auto active = store_.Active();
    if (!active) return ErrorResponse(503, "not_ready", "no policy is loaded yet", response);
    std::string body = R"({"status":"ready","policy_version":)";
    common::AppendJsonString(body, active->policy().version);
    body += "}";
    return JsonBody(200, std::move(body), response);
  }
  if (path == "/metrics") {
    if (!only(http::verb::get, "GET")) return;
    std::string extra;
    if (auto active = store_.Active()) {
      extra = "# HELP aegis_policy_info The active policy version.\n"
              "# TYPE aegis_policy_info gauge\n";
      extra += StrCat("aegis_policy_info{name=\"", active->policy().name, "\",version=\"",
                      active->policy().version, "\"} 1\n");
    }
    if (limits::LimitStore* limits = store_.limits()) {
      limits->AppendMetrics(extra);
      // A store that cannot be asked leaves the spend series out (its up gauge says why).
      if (auto rows = limits->Spend("", service::Decider::NowUnixNanos()); rows.ok()) {
        service::AppendSpendMetrics(*rows, extra);
      }
    }
    response.set(http::field::content_type, "text/plain; version=0.0.4");
    response.body() = decider_.metrics().Render(extra);
    return;
  }
  if (path == "/v1/policy") {
    if (only(http::verb::get, "GET")) PolicyInfo(response);
    return;
  }
  if (path == "/v1/policy/versions") {
    if (only(http::verb::get, "GET")) Versions(response);
    return;
  }
  if (path == "/v1/policy/reload") {
    if (only(http::verb::post, "POST")) Reload(response);
    return;
  }
  if (path == "/v1/usage") {
    if (only(http::verb::post, "POST")) Usage(request, response);
    return;
  }
  if (path == "/v1/spend") {
    if (only(http::verb::get, "GET")) Spend(request, response);
    return;
  }
  if (path == "/v1/policy/rollback") {
    if (only(http::verb::post, "POST")) Rollback(request, response);
    return;
  }
  decider_.metrics().RecordBadRequest(static_cast<int>(FrontDoor::kDecideApi));
  ErrorResponse(404, "not_found", "no such route", response);
}

void HttpApi::Respond(const engine::Decision& d, bool body_on_allow,
                      net::HttpResponse& response) const {
  int status = service::Decider::HttpStatus(d);
  response.result(static_cast<unsigned>(status));
  response.set("x-aegis-decision", std::string(policy::EffectName(d.outcome)));
  response.set("x-aegis-decision-id", std::string(d.id_view()));
  response.set("x-aegis-policy-version", d.policy->version);
  response.set("x-aegis-enforced", d.enforced() ? "true" : "false");
  if (status == 429) {
    response.set(http::field::retry_after,
                 std::to_string((d.retry_after_nanos + 999'999'999) / 1'000'000'000));
  }
  if (!d.approval_id.empty()) response.set("x-aegis-approval-id", d.approval_id);
  if (status != 200 || body_on_allow) {
    response.set(http::field::content_type, "application/json");
    response.body() = d.ToJson();
  }
}

void HttpApi::Decide(const net::HttpRequest& request, net::HttpResponse& response) const {
  constexpr int kDoor = static_cast<int>(FrontDoor::kDecideApi);
  if (!IsJson(request)) {
    decider_.metrics().RecordBadRequest(kDoor);
    return ErrorResponse(415, "unsupported_media_type", "send the call as application/json",
                         response);
  }
  if (!store_.Active()) return ErrorResponse(503, "not_ready", "no policy is loaded yet", response);
  engine::CallParseOptions options;
  options.json.max_bytes = max_body_bytes_;
  options.agent_from_token = identity_ != nullptr;
  auto call = engine::ParseCall(request.body(), service::Decider::NowUnixNanos(), options);
  if (!call.ok()) {
    decider_.metrics().RecordBadRequest(kDoor);
    bool too_large = call.status().code() == common::StatusCode::kResourceExhausted &&
                     request.body().size() > max_body_bytes_;
    return ErrorResponse(too_large ? 413 : 400, "invalid_call", call.status().message(),
                         response);
  }
  if (!ApplyCaller(request, FrontDoor::kDecideApi, *call, response)) return;
  call->traceparent = std::string(TraceparentOf(request));
  std::string traceparent;
  Respond(decider_.Decide(*call, FrontDoor::kDecideApi, &traceparent), true, response);
  if (!traceparent.empty()) response.set("traceparent", traceparent);
}

// Calls an SDK ran in fail_open mode while Aegis was unreachable, reported once it is back:
// {"calls": [call JSON as /v1/decide takes it, ...]} (at most 1000) -> {"decisions": [...]}.
// Each is decided now for the record (CallContext::record_only: no limits, approvals or
// override tokens) and recorded in the audit trail and metrics under front door
// fail_open_report, so nothing that ran goes unrecorded; the decisions say whether the policy
// would have allowed them.
void HttpApi::FailOpenReport(const net::HttpRequest& request, net::HttpResponse& response) const {
  constexpr int kDoor = static_cast<int>(FrontDoor::kFailOpenReport);
  if (!IsJson(request)) {
    decider_.metrics().RecordBadRequest(kDoor);
    return ErrorResponse(415, "unsupported_media_type", "send application/json", response);
  }
  if (!store_.Active()) return ErrorResponse(503, "not_ready", "no policy is loaded yet", response);
  auto body = common::ParseJson(request.body(), {.max_bytes = max_body_bytes_, .max_depth = 64});
  const Json* calls = body.ok() && body->is_object() && body->as_object().size() == 1
                          ? body->Find("calls")
                          : nullptr;
  if (!calls || !calls->is_array() || calls->as_array().size() > 1000) {
    decider_.metrics().RecordBadRequest(kDoor);
    return ErrorResponse(400, "invalid_request",
                         "send {\"calls\": [call, ...]} with at most 1000 calls", response);
  }
  // Every call is checked before any is recorded: a bad report records nothing.
  engine::CallParseOptions options;
  options.agent_from_token = identity_ != nullptr;
  std::vector<engine::CallContext> parsed;
  for (size_t i = 0; i < calls->as_array().size(); ++i) {
    auto call = engine::CallFromJson(calls->as_array()[i], service::Decider::NowUnixNanos(),
                                     options);
    if (!call.ok()) {
      decider_.metrics().RecordBadRequest(kDoor);
      return ErrorResponse(400, "invalid_call", StrCat("call ", i, ": ", call.status().message()),
                           response);
    }
    if (!ApplyCaller(request, FrontDoor::kFailOpenReport, *call, response)) return;
    call->record_only = true;
    call->override_token.clear();
    parsed.push_back(*std::move(call));
  }
  std::string out = "{\"decisions\":[";
  for (size_t i = 0; i < parsed.size(); ++i) {
    if (i) out += ',';
    out += decider_.Decide(parsed[i], FrontDoor::kFailOpenReport).ToJson();
  }
  out += "]}";
  JsonBody(200, std::move(out), response);
}

// Which of a tool's actions the agent could ever be allowed (engine::Engine::Offers): for
// listing tools (aegis mcp wrap filters tools/list with it). Nothing is counted or recorded.
// {"agent", "tenant"?, "tool", "actions": [...]} -> {"offered": [...]}, in the order given.
void HttpApi::Offers(const net::HttpRequest& request, net::HttpResponse& response) const {
  constexpr int kDoor = static_cast<int>(FrontDoor::kDecideApi);
  if (!IsJson(request)) {
    decider_.metrics().RecordBadRequest(kDoor);
    return ErrorResponse(415, "unsupported_media_type", "send application/json", response);
  }
  auto body = common::ParseJson(request.body(), {.max_bytes = max_body_bytes_, .max_depth = 8});
  const Json* actions = body.ok() && body->is_object() ? body->Find("actions") : nullptr;
  if (!actions || !actions->is_array() || actions->as_array().size() > 10000) {
    decider_.metrics().RecordBadRequest(kDoor);
    return ErrorResponse(400, "invalid_request",
                         "send {\"agent\", \"tool\", \"actions\": [names]} and optionally "
                         "\"tenant\"",
                         response);
  }
  std::vector<Json::Member> who;
  for (const auto& [key, value] : body->as_object()) {
    if (key != "actions") who.push_back({key, value});
  }
  engine::CallParseOptions options;
  options.agent_from_token = identity_ != nullptr;
  auto object = Json::Object(std::move(who));
  auto call = object.ok() ? engine::CallFromJson(*std::move(object),
                                                  service::Decider::NowUnixNanos(), options)
                          : common::StatusOr<engine::CallContext>(object.status());
  if (!call.ok() || call->tool.empty() || !call->action.empty()) {
    decider_.metrics().RecordBadRequest(kDoor);
    return ErrorResponse(400, "invalid_request",
                         call.ok() ? "name the tool, and the actions under \"actions\""
                                   : call.status().message(),
                         response);
  }
  if (!ApplyCaller(request, FrontDoor::kDecideApi, *call, response)) return;
  std::string out = "{\"offered\":[";
  bool first = true;
  for (const Json& a : actions->as_array()) {
    if (!a.is_string()) continue;
    call->action = a.as_string();
    if (!decider_.Offers(*call)) continue;
    if (!first) out += ',';
    first = false;
    common::AppendJsonString(out, a.as_string());
  }
  out += "]}";
  JsonBody(200, std::move(out), response);
}

void HttpApi::Authorize(const net::HttpRequest& request, net::HttpResponse& response) const {
  constexpr int kDoor = static_cast<int>(FrontDoor::kAuthzHttp);
  if (!store_.Active()) return ErrorResponse(503, "not_ready", "no policy is loaded yet", response);
  auto header = [&](std::string_view name) -> std::string_view {
    auto it = request.find(name);
    return it == request.end() ? std::string_view() : std::string_view(it->value());
  };
  // nginx auth_request describes the original request in X-Original-*; Envoy's HTTP ext_authz
  // sends it as the request itself, under the path prefix.
  std::string method, path, host;
  std::string_view original_uri = header("x-original-uri");
  if (!original_uri.empty()) {
    method = std::string(header("x-original-method"));
    if (method.empty()) method = "GET";
    path = std::string(original_uri);
    host = std::string(header("x-original-host"));
  } else {
    method = std::string(request.method_string());
    path = std::string(request.target().substr(kAuthzPrefix.size()));
    if (path.empty() || path[0] != '/') path = "/" + path;
  }
  if (host.empty()) host = std::string(header("host"));

  std::vector<Json::Member> call;
  for (auto [name, key] : {std::pair{"x-aegis-agent", "agent"}, {"x-aegis-tenant", "tenant"},
                           {"x-aegis-tool", "tool"}, {"x-aegis-action", "action"}}) {
    std::string_view v = header(name);
    if (!v.empty()) call.push_back({key, Json::String(std::string(v))});
  }
  Json headers = Json::EmptyObject();
  for (const auto& field : request) {
    std::string name = LowerAscii(field.name_string());
    if (!IsCallHeader(name)) continue;
    std::string value(field.value());
    if (const Json* prev = headers.Find(name)) value = StrCat(prev->as_string(), ", ", value);
    headers.Set(std::move(name), Json::String(std::move(value)));
  }
  Json req = Json::EmptyObject();
  req.Set("method", Json::String(method));
  req.Set("host", Json::String(host));
  req.Set("path", Json::String(path));
  req.Set("headers", std::move(headers));
  call.push_back({"request", std::move(req)});
  if (!request.body().empty() && IsJson(request)) {
    auto body = common::ParseJson(request.body(), {.max_bytes = max_body_bytes_, .max_depth = 64});
    if (!body.ok() || !body->is_object()) {
      decider_.metrics().RecordBadRequest(kDoor);
      return ErrorResponse(400, "invalid_call",
                           body.ok() ? "the JSON body must be an object" : body.status().message(),
                           response);
    }
    call.push_back({"params", *std::move(body)});
  }
  auto object = Json::Object(std::move(call));
  engine::CallParseOptions parse;
  parse.agent_from_token = identity_ != nullptr;
  auto parsed = object.ok() ? engine::CallFromJson(*std::move(object),
                                                    service::Decider::NowUnixNanos(), parse)
                            : common::StatusOr<engine::CallContext>(object.status());
  if (!parsed.ok()) {
    decider_.metrics().RecordBadRequest(kDoor);
    return ErrorResponse(400, "invalid_call", parsed.status().message(), response);
  }
  if (!ApplyCaller(request, FrontDoor::kAuthzHttp, *parsed, response)) return;
  parsed->traceparent = std::string(TraceparentOf(request));
  std::string traceparent;
  Respond(decider_.Decide(*parsed, FrontDoor::kAuthzHttp, &traceparent), false, response);
  if (!traceparent.empty()) response.set("traceparent", traceparent);
}

void HttpApi::PolicyInfo(net::HttpResponse& response) const {
  auto state = store_.reload_state();
  std::string body = "{";
  if (auto active = store_.Active()) {
    const auto& p = active->policy();
    body += "\"name\":";
    common::AppendJsonString(body, p.name);
    body += ",\"version\":";
    common::AppendJsonString(body, p.version);
    body += ",\"loaded_at\":";
    common::AppendJsonString(body, Timestamp(active->loaded_unix_nanos));
    body += StrCat(",\"rules\":", p.rules.size(), ",\"tests\":", p.tests.size(), ",");
  } else {
    body += "\"version\":null,";
  }
  body += "\"bundle\":";
  common::AppendJsonString(body, store_.bundle_path());
  body += StrCat(",\"reloads\":{\"ok\":", state.reloads_ok, ",\"failed\":", state.reloads_failed,
                 "},\"last_error\":");
  if (state.last_error.empty()) {
    body += "null";
  } else {
    body += "{\"at\":";
    common::AppendJsonString(body, Timestamp(state.last_error_unix_nanos));
    body += ",\"message\":";
    common::AppendJsonString(body, state.last_error);
    body += "}";
  }
  body += "}";
  JsonBody(200, std::move(body), response);
}

void HttpApi::Versions(net::HttpResponse& response) const {
  auto active = store_.Active();
  std::string body = "{\"active\":";
  if (active) {
    common::AppendJsonString(body, active->policy().version);
  } else {
    body += "null";
  }
  body += ",\"versions\":[";
  bool first = true;
  for (const auto& v : store_.Versions()) {
    if (!first) body += ",";
    first = false;
    body += "{\"version\":";
    common::AppendJsonString(body, v->policy().version);
    body += ",\"name\":";
    common::AppendJsonString(body, v->policy().name);
    body += ",\"loaded_at\":";
    common::AppendJsonString(body, Timestamp(v->loaded_unix_nanos));
    body += StrCat(",\"rules\":", v->policy().rules.size(),
                   ",\"active\":", v == active ? "true" : "false", "}");
  }
  body += "]}";
  JsonBody(200, std::move(body), response);
}

void HttpApi::Reload(net::HttpResponse& response) const {
  common::Status st = reload_();
  if (!st.ok()) return ErrorResponse(422, "invalid_policy", st.message(), response);
  PolicyInfo(response);
}

void HttpApi::Rollback(const net::HttpRequest& request, net::HttpResponse& response) const {
  auto body = common::ParseJson(request.body(), {.max_bytes = 4096, .max_depth = 4});
  const Json* version = body.ok() ? body->Find("version") : nullptr;
  if (!version || !version->is_string()) {
    return ErrorResponse(400, "invalid_request", "send {\"version\": \"...\"}", response);
  }
  common::Status st = store_.Rollback(version->as_string());
  if (!st.ok()) return ErrorResponse(404, "unknown_version", st.message(), response);
  Versions(response);
}

void HttpApi::Usage(const net::HttpRequest& request, net::HttpResponse& response) const {
  limits::LimitStore* limits = store_.limits();
  if (!limits) return ErrorResponse(404, "not_found", "no limits are kept", response);
  if (!IsJson(request)) {
    return ErrorResponse(415, "unsupported_media_type", "send application/json", response);
  }
  auto body = common::ParseJson(request.body(), {.max_bytes = 4096, .max_depth = 4});
  const Json* id = body.ok() ? body->Find("decision_id") : nullptr;
  const Json* cost = body.ok() ? body->Find("cost_usd") : nullptr;
  // Optional: the tenant the decision must belong to (another tenant's is "unknown").
  const Json* tenant = body.ok() ? body->Find("tenant") : nullptr;
  if (!body.ok() || !body->is_object() ||
      body->as_object().size() != (tenant ? 3u : 2u) || !id || !id->is_string() || !cost ||
      !cost->is_number() || (tenant && !tenant->is_string())) {
    return ErrorResponse(400, "invalid_request",
                         "send {\"decision_id\": \"...\", \"cost_usd\": <number>} and optionally "
                         "\"tenant\", nothing else",
                         response);
  }
  double usd = cost->as_double();
  if (!std::isfinite(usd) || usd < 0 || usd > 1e9) {
    return ErrorResponse(400, "invalid_request", "cost_usd must be between 0 and 1000000000",
                         response);
  }
  // Where agents must present tokens, settling needs one too, and only the token's tenant's
  // decisions can be settled: settling to $0 gives budget back.
  std::string owner = tenant ? tenant->as_string() : std::string();
  if (identity_ && identity_->options().require_agent_token) {
    auto header = [&](std::string_view name) {
      auto it = request.find(name);
      return it == request.end() ? std::string_view() : std::string_view(it->value());
    };
    std::string_view token = header("x-aegis-token");
    if (token.empty()) token = service::Identity::BearerToken(header("authorization"));
    auto claims = identity_->VerifyAgentToken(token, service::Decider::NowUnixNanos() / 1'000'000'000);
    if (!claims.ok()) {
      response.set(http::field::www_authenticate, "Bearer realm=\"aegis\"");
      return ErrorResponse(401, "unauthenticated",
                           token.empty() ? "send the agent token (x-aegis-token)"
                                         : claims.status().message(),
                           response);
    }
    if (tenant && tenant->as_string() != claims->tenant) {
      return ErrorResponse(404, "unknown_decision", "no such decision", response);
    }
    owner = claims->tenant;
  }
  auto micros = static_cast<limits::Micros>(std::llround(usd * 1e6));
  common::Status st = limits->Settle(id->as_string(), micros, service::Decider::NowUnixNanos(),
                                     owner);
  if (st.code() == common::StatusCode::kNotFound) {
    return ErrorResponse(404, "unknown_decision", st.message(), response);
  }
  if (st.code() == common::StatusCode::kFailedPrecondition) {
    return ErrorResponse(409, "already_settled", st.message(), response);
  }
  if (st.code() == common::StatusCode::kUnavailable) {
    return ErrorResponse(503, "limits_unavailable", st.message(), response);
  }
  if (!st.ok()) return ErrorResponse(400, "invalid_request", st.message(), response);
  std::string out = "{\"decision_id\":";
  common::AppendJsonString(out, id->as_string());
  out += ",\"settled\":true}";
  JsonBody(200, std::move(out), response);
}

void HttpApi::Spend(const net::HttpRequest& request, net::HttpResponse& response) const {
  limits::LimitStore* limits = store_.limits();
  if (!limits) return ErrorResponse(404, "not_found", "no limits are kept", response);
  // ?prefix=agent/acme/ narrows the report; keys are "agent/<tenant>/<agent>".
  std::string_view target = request.target();
  size_t q = target.find('?');
  Json query = Json::EmptyObject();
  if (q != std::string_view::npos) {
    auto parsed = engine::NormalizePath(std::string("/") + std::string(target.substr(q)), &query);
    if (!parsed.ok()) return ErrorResponse(400, "invalid_request", parsed.status().message(),
                                           response);
  }
  // Filters: ?prefix= on the key, and ?tenant= ?agent= ?tool= ?window= ?scope= exactly.
  auto param = [&](std::string_view name) -> std::optional<std::string_view> {
    const Json* v = query.Find(name);
    if (!v || !v->is_string()) return std::nullopt;
    return v->as_string();
  };
  for (const auto& [name, value] : query.as_object()) {
    static constexpr std::string_view kKnown[] = {"prefix", "tenant", "agent", "tool", "rule",
                                                  "window", "scope"};
    if (std::find(std::begin(kKnown), std::end(kKnown), name) == std::end(kKnown)) {
      return ErrorResponse(400, "invalid_request",
                           StrCat("unknown parameter \"", name,
                                  "\" (allowed: prefix, tenant, agent, tool, rule, window, "
                                  "scope)"),
                           response);
    }
  }
  auto rows = limits->Spend(param("prefix").value_or(""), service::Decider::NowUnixNanos());
  if (!rows.ok()) {
    return ErrorResponse(503, "limits_unavailable", rows.status().message(), response);
  }
  auto wanted = [&](std::string_view name, std::string_view value) {
    auto p = param(name);
    return !p || *p == value;
  };
  std::string out = "{\"budgets\":[";
  bool first = true;
  for (const auto& row : *rows) {
    limits::KeyParts k = limits::SplitKey(row.key);
    if (!wanted("tenant", k.tenant) || !wanted("agent", k.agent) || !wanted("tool", k.tool) ||
        !wanted("rule", k.rule) || !wanted("window", row.window) || !wanted("scope", k.scope)) {
      continue;
    }
    if (!first) out += ",";
    first = false;
    out += "{\"key\":";
    common::AppendJsonString(out, row.key);
    out += ",\"scope\":";
    common::AppendJsonString(out, k.scope);
    for (auto [name, value] : {std::pair{"tenant", k.tenant}, {"agent", k.agent}, {"tool", k.tool},
                               {"rule", k.rule}}) {
      if (value.empty()) continue;
      out += StrCat(",\"", name, "\":");
      common::AppendJsonString(out, value);
    }
    out += ",\"window\":";
    common::AppendJsonString(out, row.window);
    out += ",\"window_start\":";
    common::AppendJsonString(out, Timestamp(row.window_start_unix_nanos));
    out += ",\"spent_usd\":";
    out += policy::FormatUsdMicros(row.spent);
    out += ",\"limit_usd\":";
    out += policy::FormatUsdMicros(row.limit);
    out += ",\"remaining_usd\":";
    out += policy::FormatUsdMicros(std::max<limits::Micros>(row.limit - row.spent, 0));
    out += "}";
  }
  out += "]}";
  JsonBody(200, std::move(out), response);
}

}  // namespace aegis::frontdoors
