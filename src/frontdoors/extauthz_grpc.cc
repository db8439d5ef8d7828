#include "frontdoors/extauthz_grpc.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "common/host.h"
#include "common/strings.h"
#include "frontdoors/headers.h"

namespace aegis::frontdoors {

using common::InvalidArgumentError;
using common::Json;
using common::StrCat;

namespace {

// google.rpc.Code values.
constexpr int kRpcOk = 0;
constexpr int kRpcInvalidArgument = 3;
constexpr int kRpcPermissionDenied = 7;
constexpr int kRpcUnavailable = 14;
constexpr int kRpcUnauthenticated = 16;

constexpr size_t kMaxHeaders = 1000;

constexpr std::string_view kSanitizeUnsupported =
    "the policy asks for the body to be redacted, which Envoy ext_authz cannot do; send this "
    "call through the Aegis proxy or the decide API";


// RFC 9110 token characters, plus a leading ':' for pseudo-headers.
bool IsValidHeaderName(std::string_view name) {
  if (name.empty() || name.size() > 256) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    auto c = static_cast<unsigned char>(name[i]);
    if (c == ':' && i == 0) continue;
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// A header value must be valid UTF-8 without NUL, CR or LF: anything else is either an attack on
// a parser downstream or a proxy bug, and cannot be put into the call JSON faithfully.
bool IsValidHeaderValue(std::string_view value) {
  for (char c : value) {
    if (c == '\0' || c == '\r' || c == '\n') return false;
  }
  return common::IsValidUtf8(value);
}

// The printable part of a hostile name, for error messages.
std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, 64)) {
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  return out;
}

bool IsJsonContentType(std::string_view content_type) {
  std::string type = LowerAscii(content_type);
  return type == "application/json" || type.rfind("application/json;", 0) == 0;
}

// The headers of a request, lower-cased, in one map. Repeated names: refused in the `headers`
// form (Envoy merges them before sending, so a repeat is not from Envoy), joined with ", " in
// the `header_map` form (where Envoy keeps them apart).
common::StatusOr<std::vector<std::pair<std::string, std::string>>> CollectHeaders(
    const authv3::AttributeContext::HttpRequest& http) {
  std::vector<std::pair<std::string, std::string>> headers;
  std::unordered_map<std::string, size_t> index;  // name -> position in `headers`
  auto add = [&](std::string_view name, std::string_view value, bool join) -> common::Status {
    if (!IsValidHeaderName(name)) {
      return InvalidArgumentError(StrCat("invalid header name \"", Printable(name), "\""));
    }
    std::string lower = LowerAscii(name);
    if (!IsValidHeaderValue(value)) {
      return InvalidArgumentError(
          StrCat("header \"", lower, "\" is not valid UTF-8 or holds a control byte"));
    }
    auto [it, inserted] = index.try_emplace(lower, headers.size());
    if (!inserted) {
      if (!join) return InvalidArgumentError(StrCat("header \"", lower, "\" is given twice"));
      std::string& v = headers[it->second].second;
      v += ", ";
      v += value;
      return common::OkStatus();
    }
    if (headers.size() == kMaxHeaders) {
      return InvalidArgumentError(StrCat("more than ", kMaxHeaders, " headers"));
    }
    headers.emplace_back(std::move(lower), std::string(value));
    return common::OkStatus();
  };
  for (const auto& entry : http.headers()) {
    if (auto st = add(entry.key(), entry.value(), false); !st.ok()) return st;
  }
  if (http.has_header_map()) {
    if (http.headers_size() > 0) {
      return InvalidArgumentError("headers and header_map cannot both be given");
    }
    for (const auto& h : http.header_map().headers()) {
      std::string_view value =
          h.raw_value().empty() ? std::string_view(h.value()) : std::string_view(h.raw_value());
      if (auto st = add(h.key(), value, true); !st.ok()) return st;
    }
  }
  return headers;
}

const std::string* FindHeader(const std::vector<std::pair<std::string, std::string>>& headers,
                              std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

// Picks the one value that `field` and the headers give: every non-empty source must agree.
// `same` compares two values.
template <typename Same>
common::StatusOr<std::string> Agree(
    std::string_view what,
    std::initializer_list<std::pair<std::string_view, const std::string*>> sources, Same same) {
  const std::string* chosen = nullptr;
  std::string_view chosen_name;
  for (const auto& [name, value] : sources) {
    if (value == nullptr || value->empty()) continue;
    if (chosen == nullptr) {
      chosen = value;
      chosen_name = name;
      continue;
    }
    auto st = same(*chosen, *value);
    if (!st.ok()) return st.status();
    if (!*st) {
      return InvalidArgumentError(StrCat(what, ": ", chosen_name, " and ", name, " disagree"));
    }
  }
  return chosen ? *chosen : std::string();
}

common::StatusOr<bool> SameBytes(const std::string& a, const std::string& b) { return a == b; }

common::StatusOr<bool> SameHost(const std::string& a, const std::string& b) {
  auto na = common::NormalizeHost(a);
  if (!na.ok()) return InvalidArgumentError(StrCat("request.host: ", na.status().message()));
  auto nb = common::NormalizeHost(b);
  if (!nb.ok()) return InvalidArgumentError(StrCat("request.host: ", nb.status().message()));
  return *na == *nb;
}

void AddHeader(google::protobuf::RepeatedPtrField<envoy::config::core::v3::HeaderValueOption>* to,
               std::string_view key, std::string_view value) {
  auto* option = to->Add();
  option->mutable_header()->set_key(std::string(key));
  option->mutable_header()->set_value(std::string(value));
  // Replace, never append: a client must not be able to pre-set these headers.
  option->mutable_append()->set_value(false);
}

void AddDecisionHeaders(
    const engine::Decision& d,
    google::protobuf::RepeatedPtrField<envoy::config::core::v3::HeaderValueOption>* to) {
  AddHeader(to, "x-aegis-decision", policy::EffectName(d.outcome));
  AddHeader(to, "x-aegis-decision-id", d.id_view());
  AddHeader(to, "x-aegis-policy-version", d.policy ? std::string_view(d.policy->version) : "");
  AddHeader(to, "x-aegis-enforced", d.enforced() ? "true" : "false");
  if (!d.approval_id.empty()) AddHeader(to, "x-aegis-approval-id", d.approval_id);
}

void Deny(int rpc_code, std::string message, int http_status, std::string body,
          authv3::CheckResponse* out) {
  out->mutable_status()->set_code(rpc_code);
  out->mutable_status()->set_message(std::move(message));
  auto* denied = out->mutable_denied_response();
  denied->mutable_status()->set_code(static_cast<envoy::type::v3::StatusCode>(http_status));
  AddHeader(denied->mutable_headers(), "content-type", "application/json");
  denied->set_body(std::move(body));
}

std::string ErrorBody(std::string_view code, std::string_view message) {
  std::string body = R"({"error":{"code":)";
  common::AppendJsonString(body, code);
  body += ",\"message\":";
  common::AppendJsonString(body, common::IsValidUtf8(message) ? message : "invalid request");
  body += "}}";
  return body;
}

}  // namespace

bool HasBody(const authv3::CheckRequest& request) {
  const auto& http = request.attributes().request().http();
  return !http.body().empty() || !http.raw_body().empty();
}

common::StatusOr<engine::CallContext> CallFromCheckRequest(const authv3::CheckRequest& request,
                                                           int64_t now_unix_nanos,
                                                           const ExtAuthzOptions& options) {
  const auto& attributes = request.attributes();
  if (!attributes.request().has_http()) {
    return InvalidArgumentError("the CheckRequest has no HTTP request (attributes.request.http)");
  }
  const auto& http = attributes.request().http();
  auto headers = CollectHeaders(http);
  if (!headers.ok()) return headers.status();

  auto method =
      Agree("request.method",
            {{"method", &http.method()}, {":method", FindHeader(*headers, ":method")}}, SameBytes);
  if (!method.ok()) return method.status();
  auto path = Agree("request.path",
                    {{"path", &http.path()}, {":path", FindHeader(*headers, ":path")}}, SameBytes);
  if (!path.ok()) return path.status();
  auto host = Agree("request.host",
                    {{"host", &http.host()},
                     {":authority", FindHeader(*headers, ":authority")},
                     {"the host header", FindHeader(*headers, "host")}},
                    SameHost);
  if (!host.ok()) return host.status();
  if (!http.fragment().empty()) return InvalidArgumentError("request.fragment must be empty");
  if (!http.query().empty()) {
    // Envoy leaves `query` empty and sends the query string in `path`; accept another sender's
    // split form, but not both at once.
    if (path->find('?') != std::string::npos) {
      return InvalidArgumentError("request.query and a query string in request.path disagree");
    }
    *path += "?";
    *path += http.query();
  }

  Json call = Json::EmptyObject();
  // Hints: the route's context extensions (operator config) first, then the request's headers.
  const auto& extensions = attributes.context_extensions();
  for (std::string_view key : {"agent", "tenant", "tool", "action"}) {
    std::string k(key);
    if (auto it = extensions.find(k); it != extensions.end() && !it->second.empty()) {
      call.Set(k, Json::String(it->second));
    } else if (const std::string* v = FindHeader(*headers, StrCat("x-aegis-", key));
               v && !v->empty()) {
      call.Set(k, Json::String(*v));
    }
  }
  if (!call.Find("agent") && !attributes.source().principal().empty()) {
    const std::string& principal = attributes.source().principal();
    if (!common::IsValidUtf8(principal)) {
      return InvalidArgumentError("source.principal is not valid UTF-8");
    }
    call.Set("agent", Json::String(principal));
  }

  Json req = Json::EmptyObject();
  if (!method->empty()) {
    if (!common::IsValidUtf8(*method))
      return InvalidArgumentError("request.method must be letters");
    req.Set("method", Json::String(*std::move(method)));
  }
  if (!host->empty()) req.Set("host", Json::String(*std::move(host)));
  if (!path->empty()) req.Set("path", Json::String(*std::move(path)));
  Json json_headers = Json::EmptyObject();
  const std::string* content_type = nullptr;
  for (auto& [name, value] : *headers) {
    if (name == "content-type") content_type = &value;
    if (name[0] == ':' || !IsCallHeader(name)) continue;
    json_headers.Set(name, Json::String(value));
  }
  req.Set("headers", std::move(json_headers));
  call.Set("request", std::move(req));

  if (!http.body().empty() && !http.raw_body().empty()) {
    return InvalidArgumentError("body and raw_body cannot both be given");
  }
  const std::string& body = http.body().empty() ? http.raw_body() : http.body();
  if (!body.empty() && content_type && IsJsonContentType(*content_type)) {
    auto parsed = common::ParseJson(body, options.json);
    if (!parsed.ok()) {
      // ResourceExhausted (HTTP 413) only for a body over the size limit; too deep is malformed.
      bool too_large = parsed.status().code() == common::StatusCode::kResourceExhausted &&
                       body.size() > options.json.max_bytes;
      return common::Status(
          too_large ? common::StatusCode::kResourceExhausted : common::StatusCode::kInvalidArgument,
          StrCat("body: ", parsed.status().message()));
    }
    if (!parsed->is_object()) return InvalidArgumentError("the JSON body must be an object");
    call.Set("params", *std::move(parsed));
  }
  engine::CallParseOptions parse;
  parse.agent_from_token = options.identity != nullptr;
  return engine::CallFromJson(std::move(call), now_unix_nanos, parse);
}

void DecisionToCheckResponse(const engine::Decision& d, bool request_had_body,
                             int refusal_http_status, authv3::CheckResponse* out) {
  policy::Effect effect = d.effective();
  // Envoy cannot rewrite the body: a sanitize decision passes only when there is nothing to
  // rewrite (no body, or a body in which no redaction changed anything).
  if (effect == policy::Effect::kSanitize &&
      (!request_had_body || (d.sanitized_params && d.redacted_paths.empty()))) {
    effect = policy::Effect::kAllow;
  }
  if (refusal_http_status < 400 || refusal_http_status > 599) refusal_http_status = 403;
  switch (effect) {
    case policy::Effect::kAllow: {
      out->mutable_status()->set_code(kRpcOk);
      auto* ok = out->mutable_ok_response();
      AddDecisionHeaders(d, ok->mutable_headers());
      AddDecisionHeaders(d, ok->mutable_response_headers_to_add());
      return;
    }
    case policy::Effect::kSanitize: {
      // The decision JSON with one more member: why the front door refused what the policy
      // would have let through.
      std::string body = d.ToJson();
      body.pop_back();  // its closing '}'
      body += R"(,"error":{"code":"sanitize_unsupported","message":)";
      common::AppendJsonString(body, kSanitizeUnsupported);
      body += "}}";
      Deny(kRpcPermissionDenied, "sanitize_unsupported", 403, std::move(body), out);
      AddDecisionHeaders(d, out->mutable_denied_response()->mutable_headers());
      return;
    }
    case policy::Effect::kApprovalNeeded:
    case policy::Effect::kDeny: {
      std::string message(policy::EffectName(d.outcome));
      if (d.deciding_rule) message = StrCat(message, " by rule ", d.deciding_rule->id);
      if (!d.reasons.empty() && d.reasons.front().code != engine::reason::kRule) {
        message = StrCat(message, " (", d.reasons.front().code, ")");
      }
      Deny(kRpcPermissionDenied, std::move(message), refusal_http_status, d.ToJson(), out);
      AddDecisionHeaders(d, out->mutable_denied_response()->mutable_headers());
      return;
    }
  }
}

void BadInputToCheckResponse(const common::Status& status, authv3::CheckResponse* out) {
  int http = status.code() == common::StatusCode::kResourceExhausted ? 413 : 400;
  Deny(kRpcInvalidArgument,
       common::IsValidUtf8(status.message()) ? status.message() : "invalid request", http,
       ErrorBody("invalid_call", status.message()), out);
}

void NotReadyToCheckResponse(authv3::CheckResponse* out) {
  Deny(kRpcUnavailable, "no policy is loaded yet", 503,
       ErrorBody("not_ready", "no policy is loaded yet"), out);
}

namespace {

// A header of the original request as Envoy sent it (lower-case names), or empty.
std::string_view OriginalHeader(const authv3::CheckRequest& request, std::string_view name) {
  const auto& http = request.attributes().request().http();
  for (const auto& entry : http.headers()) {
    if (entry.key() == name) return entry.value();
  }
  for (const auto& h : http.header_map().headers()) {
    if (h.key() == name) return h.raw_value().empty() ? h.value() : h.raw_value();
  }
  return {};
}

}  // namespace

void ExtAuthzService::Answer(const authv3::CheckRequest& request,
                             authv3::CheckResponse* response) const {
  constexpr auto kDoor = service::FrontDoor::kExtAuthzGrpc;
  if (!decider_.store().Active()) return NotReadyToCheckResponse(response);
  auto call = CallFromCheckRequest(request, service::Decider::NowUnixNanos(), options_);
  if (!call.ok()) {
    decider_.metrics().RecordBadRequest(static_cast<int>(kDoor));
    return BadInputToCheckResponse(call.status(), response);
  }
  // The agent's token comes in x-aegis-token: the original Authorization belongs upstream.
  std::string_view token = OriginalHeader(request, "x-aegis-token");
  std::string_view override_token = OriginalHeader(request, "x-aegis-override");
  common::Status st = common::OkStatus();
  if (options_.identity) {
    st = options_.identity->ApplyCaller(token, override_token, *call);
  } else if (!token.empty()) {
    st = common::UnauthenticatedError("agent tokens are not configured on this gateway");
  } else {
    call->override_token = std::string(override_token);
  }
  if (!st.ok()) {
    decider_.metrics().RecordBadRequest(static_cast<int>(kDoor));
    if (st.code() == common::StatusCode::kInvalidArgument) {
      return BadInputToCheckResponse(st, response);
    }
    return Deny(kRpcUnauthenticated, st.message(), 401, ErrorBody("unauthenticated", st.message()),
                response);
  }
  std::string_view traceparent = OriginalHeader(request, "traceparent");
  if (traceparent.size() <= 128) call->traceparent = std::string(traceparent);
  engine::Decision d = decider_.Decide(*call, kDoor);
  DecisionToCheckResponse(d, HasBody(request), service::Decider::HttpStatus(d), response);
}

grpc::ServerUnaryReactor* ExtAuthzService::Check(grpc::CallbackServerContext* context,
                                                 const authv3::CheckRequest* request,
                                                 authv3::CheckResponse* response) {
  Answer(*request, response);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const ::grpc::health::v1::HealthCheckRequest*,
                                               ::grpc::health::v1::HealthCheckResponse* response) {
  response->set_status(store_.Active() ? ::grpc::health::v1::HealthCheckResponse::SERVING
                                       : ::grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  auto* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

GrpcServer::~GrpcServer() { Shutdown(std::chrono::milliseconds(0)); }

void GrpcServer::Shutdown(std::chrono::milliseconds drain) {
  std::call_once(shutdown_once_, [&] {
    server_->Shutdown(std::chrono::system_clock::now() + drain);
    server_->Wait();
  });
}

common::StatusOr<std::unique_ptr<GrpcServer>> StartGrpcServer(const std::string& address,
                                                              const service::Decider& decider,
                                                              const GrpcServerOptions& options) {
  ExtAuthzOptions authz_options;
  authz_options.json.max_bytes = options.max_body_bytes;
  authz_options.identity = options.identity;
  auto authz = std::make_unique<ExtAuthzService>(decider, authz_options);
  auto health = std::make_unique<HealthService>(decider.store());

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(authz.get());
  builder.RegisterService(health.get());
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(options.max_body_bytes + GrpcServerOptions::kHeaderSlack));
  // Envoy holds a few long-lived HTTP/2 connections: ping them now and then so a peer that
  // vanished is noticed, and tolerate Envoy's own keepalive pings.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1024);
  // gRPC sets SO_REUSEPORT by default, so a second server on a taken port would silently share
  // its traffic; a port in use must be an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    return common::Status(common::StatusCode::kUnavailable,
                          StrCat("cannot listen on ", address, " (gRPC)"));
  }
  return std::make_unique<GrpcServer>(std::move(authz), std::move(health), std::move(server), port);
}

}  // namespace aegis::frontdoors
