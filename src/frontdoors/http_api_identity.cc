// The identity and approvals routes of HttpApi: agent tokens on decision routes, JWKS,
// POST /v1/tokens, /v1/approvals (docs/serve.md, docs/identity.md, docs/approvals.md).
#include <charconv>
#include <utility>

#include "common/json.h"
#include "common/strings.h"
#include "frontdoors/http_api.h"

namespace aegis::frontdoors {

namespace http = boost::beast::http;
using common::Json;
using common::StrCat;

namespace {

std::string_view Header(const net::HttpRequest& request, std::string_view name) {
  auto it = request.find(name);
  return it == request.end() ? std::string_view() : std::string_view(it->value());
}

int64_t NowSeconds() { return service::Decider::NowUnixNanos() / 1'000'000'000; }

void Unauthorized(std::string_view message, net::HttpResponse& response) {
  response.set(http::field::www_authenticate, "Bearer");
  ErrorResponse(401, "unauthenticated", message, response);
}

}  // namespace

bool HttpApi::ApplyCaller(const net::HttpRequest& request, service::FrontDoor door,
                          engine::CallContext& call, net::HttpResponse& response) const {
  std::string_view token = Header(request, "x-aegis-token");
  if (token.empty() && door != service::FrontDoor::kAuthzHttp) {
    token = service::Identity::BearerToken(Header(request, "authorization"));
  }
  std::string_view override_token = Header(request, "x-aegis-override");
  if (!identity_) {
    if (!token.empty()) {
      Unauthorized("agent tokens are not configured on this gateway", response);
      return false;
    }
    if (!override_token.empty()) call.override_token = std::string(override_token);
    return true;
  }
  common::Status st = identity_->ApplyCaller(token, override_token, call);
  if (!st.ok()) {
    decider_.metrics().RecordBadRequest(static_cast<int>(door));
    if (st.code() == common::StatusCode::kInvalidArgument) {
      ErrorResponse(400, "invalid_call", st.message(), response);
    } else {
      Unauthorized(st.message(), response);
    }
    return false;
  }
  return true;
}

std::optional<std::string> HttpApi::RequireRole(const net::HttpRequest& request,
                                                std::string_view role,
                                                net::HttpResponse& response) const {
  std::string_view secret = service::Identity::BearerToken(Header(request, "authorization"));
  if (!identity_ || identity_->options().credentials.empty()) {
    ErrorResponse(403, "forbidden", "no credentials are configured (identity.credentials)",
                  response);
    return std::nullopt;
  }
  if (secret.empty()) {
    Unauthorized(StrCat("send a credential with the ", role, " role as Authorization: Bearer"),
                 response);
    return std::nullopt;
  }
  auto name = identity_->Authenticate(secret, role);
  if (!name) {
    // Unknown secret and a known one without the role look alike to the caller.
    ErrorResponse(403, "forbidden", StrCat("this credential does not have the ", role, " role"),
                  response);
    return std::nullopt;
  }
  return name;
}

void HttpApi::Jwks(net::HttpResponse& response) const {
  if (!identity_) return ErrorResponse(404, "not_found", "agent tokens are not configured", response);
  response.set(http::field::cache_control, "max-age=60");
  JsonBody(200, identity_->keyring().JwksJson(), response);
}

void HttpApi::Tokens(const net::HttpRequest& request, net::HttpResponse& response) const {
  auto issuer = RequireRole(request, "issuer", response);
  if (!issuer) return;
  if (!IsJson(request)) {
    return ErrorResponse(415, "unsupported_media_type", "send application/json", response);
  }
  auto body = common::ParseJson(request.body(), {.max_bytes = 4096, .max_depth = 2});
  const Json* agent = body.ok() ? body->Find("agent") : nullptr;
  const Json* tenant = body.ok() ? body->Find("tenant") : nullptr;
  const Json* ttl = body.ok() ? body->Find("ttl_seconds") : nullptr;
  size_t known = (agent ? 1 : 0) + (tenant ? 1 : 0) + (ttl ? 1 : 0);
  if (!body.ok() || !body->is_object() || body->as_object().size() != known || !agent ||
      !agent->is_string() || (tenant && !tenant->is_string()) || (ttl && !ttl->is_int())) {
    return ErrorResponse(400, "invalid_request",
                         "send {\"agent\": \"...\", \"tenant\": \"...\", \"ttl_seconds\": N} "
                         "(tenant and ttl_seconds optional), nothing else",
                         response);
  }
  std::string tenant_name = tenant ? tenant->as_string() : "";
  auto active = store_.Active();
  if (!active) return ErrorResponse(503, "not_ready", "no policy is loaded yet", response);
  if (!active->policy().FindAgent(tenant_name, agent->as_string())) {
    return ErrorResponse(404, "unknown_agent",
                         StrCat("the policy declares no agent \"", agent->as_string(),
                                "\" for tenant \"", tenant_name, "\""),
                         response);
  }
  int64_t now = NowSeconds();
  identity::Claims issued;
  auto token = identity_->IssueAgentToken(
      agent->as_string(), tenant_name,
      ttl ? ttl->as_int() : identity_->options().default_ttl_seconds, now, &issued);
  if (!token.ok()) return ErrorResponse(400, "invalid_request", token.status().message(), response);
  std::string out = "{\"token\":";
  common::AppendJsonString(out, *token);
  out += ",\"token_type\":\"Bearer\",\"agent\":";
  common::AppendJsonString(out, issued.sub);
  out += ",\"tenant\":";
  common::AppendJsonString(out, issued.tenant);
  out += ",\"jti\":";
  common::AppendJsonString(out, issued.jti);
  out += StrCat(",\"expires_in\":", issued.exp - now, ",\"expires_at\":");
  common::AppendJsonString(out, Timestamp(issued.exp * 1'000'000'000));
  out += "}";
  JsonBody(200, std::move(out), response);
}

void HttpApi::Approvals(const net::HttpRequest& request, std::string_view path,
                        net::HttpResponse& response) const {
  service::ApprovalService* approvals = decider_.approvals();
  if (!approvals) return ErrorResponse(404, "not_found", "approvals are not kept here", response);
  int64_t now = NowSeconds();
  // /v1/approvals[/ID[/approve|/deny]]
  std::string_view rest = path.substr(std::string_view("/v1/approvals").size());
  if (rest.empty() || rest == "/") {
    if (request.method() != http::verb::get) {
      response.set(http::field::allow, "GET");
      return ErrorResponse(405, "method_not_allowed", "/v1/approvals accepts GET", response);
    }
    if (!RequireRole(request, "approver", response)) return;
    Json query = Json::EmptyObject();
    std::string_view target = request.target();
    if (size_t q = target.find('?'); q != std::string_view::npos) {
      auto parsed = engine::NormalizePath(StrCat("/", target.substr(q)), &query);
      if (!parsed.ok()) {
        return ErrorResponse(400, "invalid_request", parsed.status().message(), response);
      }
    }
    approvals::ListFilter filter;
    for (const auto& [key, value] : query.as_object()) {
      const std::string& v = value.as_string();
      if (key == "state") {
        filter.state = approvals::ParseState(v);
        if (!filter.state) {
          return ErrorResponse(400, "invalid_request",
                               "state is pending, approved, denied or expired", response);
        }
      } else if (key == "tenant") {
        filter.tenant = v;
      } else if (key == "agent") {
        filter.agent = v;
      } else if (key == "limit") {
        size_t n = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec != std::errc() || end != v.data() + v.size() || n < 1 || n > 1000) {
          return ErrorResponse(400, "invalid_request", "limit is 1-1000", response);
        }
        filter.limit = n;
      } else {
        return ErrorResponse(400, "invalid_request",
                             StrCat("unknown parameter \"", key,
                                    "\" (allowed: state, tenant, agent, limit)"),
                             response);
      }
    }
    auto list = approvals->List(filter, now);
    if (!list.ok()) return ErrorResponse(503, "approvals_unavailable", list.status().message(), response);
    std::string out = "{\"approvals\":[";
    for (size_t i = 0; i < list->size(); ++i) {
      if (i) out += ",";
      out += (*list)[i].ToJson();
    }
    out += "]}";
    return JsonBody(200, std::move(out), response);
  }
  rest.remove_prefix(1);
  std::string_view id = rest.substr(0, rest.find('/'));
  std::string_view verb = rest.size() > id.size() ? rest.substr(id.size() + 1) : "";
  bool id_ok = id.size() == 36 && id.starts_with("apr_") &&
               id.substr(4).find_first_not_of("0123456789abcdef") == std::string_view::npos;
  if (!id_ok || (!verb.empty() && verb != "approve" && verb != "deny")) {
    return ErrorResponse(404, "not_found", "no such approval route", response);
  }
  auto error = [&](const common::Status& st) {
    switch (st.code()) {
      case common::StatusCode::kNotFound:
        return ErrorResponse(404, "unknown_approval", st.message(), response);
      case common::StatusCode::kFailedPrecondition:
        return ErrorResponse(409, "approval_decided", st.message(), response);
      case common::StatusCode::kPermissionDenied:
        return ErrorResponse(403, "self_approval", st.message(), response);
      case common::StatusCode::kInvalidArgument:
        return ErrorResponse(400, "invalid_request", st.message(), response);
      default:
        return ErrorResponse(503, "approvals_unavailable", st.message(), response);
    }
  };

  if (verb.empty()) {
    if (request.method() != http::verb::get) {
      response.set(http::field::allow, "GET");
      return ErrorResponse(405, "method_not_allowed", "an approval accepts GET", response);
    }
    auto a = approvals->Get(id, now);
    if (!a.ok()) return error(a.status());
    // Approvers (a credential) see the approval. The requesting agent polls it: with its agent
    // token when tokens are configured and presented (another agent's is refused as unknown),
    // and then receives the override token once it is approved.
    std::string_view secret = service::Identity::BearerToken(Header(request, "authorization"));
    std::string_view agent_token = Header(request, "x-aegis-token");
    // A bearer that is a JWT is the agent's token, anything else an approver's credential.
    if (agent_token.empty() && secret.starts_with("eyJ")) std::swap(agent_token, secret);
    bool approver = identity_ && !secret.empty() && identity_->Authenticate(secret, "approver");
    if (identity_ && !approver) {
      if (agent_token.empty() && identity_->options().require_agent_token) {
        return Unauthorized("poll with the requesting agent's token (x-aegis-token)", response);
      }
      if (!agent_token.empty()) {
        auto claims = identity_->VerifyAgentToken(agent_token, now);
        if (!claims.ok()) return Unauthorized(claims.status().message(), response);
        if (claims->sub != a->agent || claims->tenant != a->tenant) {
          return ErrorResponse(404, "unknown_approval", StrCat("no approval ", id), response);
        }
      }
    }
    std::string out = a->ToJson();
    if (!approver && identity_ && a->state == approvals::State::kApproved) {
      auto token = identity_->IssueOverrideToken(*a, now);
      if (!token.ok()) return ErrorResponse(500, "internal", token.status().message(), response);
      out.pop_back();
      out += ",\"override_token\":";
      common::AppendJsonString(out, *token);
      out += "}";
    }
    return JsonBody(200, std::move(out), response);
  }

  if (request.method() != http::verb::post) {
    response.set(http::field::allow, "POST");
    return ErrorResponse(405, "method_not_allowed", "approve and deny accept POST", response);
  }
  auto approver = RequireRole(request, "approver", response);
  if (!approver) return;
  approvals::Vote vote;
  vote.approver = *approver;
  vote.approve = verb == "approve";
  vote.at = now;
  if (!request.body().empty()) {
    auto body = common::ParseJson(request.body(), {.max_bytes = 8192, .max_depth = 2});
    const Json* comment = body.ok() ? body->Find("comment") : nullptr;
    if (!body.ok() || !body->is_object() || body->as_object().size() != (comment ? 1u : 0u) ||
        (comment && !comment->is_string())) {
      return ErrorResponse(400, "invalid_request", "send {\"comment\": \"...\"} or nothing",
                           response);
    }
    if (comment) vote.comment = comment->as_string();
  }
  auto a = approvals->Vote(id, vote);
  if (!a.ok()) return error(a.status());
  JsonBody(200, a->ToJson(), response);
}

}  // namespace aegis::frontdoors
