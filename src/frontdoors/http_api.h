// HttpApi: the routes of the HTTP listener (docs/serve.md): the decide API, the policy API,
// HTTP authorization for Envoy's HTTP ext_authz and nginx auth_request, health and metrics.
// It only translates between HTTP and CallContext/Decision; the decision is the Decider's.
#ifndef AEGIS_FRONTDOORS_HTTP_API_H_
#define AEGIS_FRONTDOORS_HTTP_API_H_

#include <functional>
#include <optional>
#include <string>

#include "common/status.h"
#include "net/http_server.h"
#include "service/decider.h"
#include "service/identity.h"

namespace aegis::frontdoors {

class HttpApi {
 public:
  // `reload` recompiles the bundle (POST /v1/policy/reload); it returns the compiler's errors
  // when the bundle is refused.
  // `identity` (optional, not owned): agent tokens on the decision routes, /v1/tokens, JWKS,
  // credentials for the approvals routes. Without it tokens are not accepted.
  HttpApi(const service::Decider& decider, service::PolicyStore& store,
          std::function<common::Status()> reload, size_t max_body_bytes,
          const service::Identity* identity = nullptr);

  // Routes one request. Never throws; every error is a JSON error response.
  void Handle(const net::HttpRequest& request, net::HttpResponse& response) const;

 private:
  void Decide(const net::HttpRequest& request, net::HttpResponse& response) const;
  void Authorize(const net::HttpRequest& request, net::HttpResponse& response) const;
  void Offers(const net::HttpRequest& request, net::HttpResponse& response) const;
  void FailOpenReport(const net::HttpRequest& request, net::HttpResponse& response) const;
  void PolicyInfo(net::HttpResponse& response) const;
  void Versions(net::HttpResponse& response) const;
  void Reload(net::HttpResponse& response) const;
  void Rollback(const net::HttpRequest& request, net::HttpResponse& response) const;
  void Usage(const net::HttpRequest& request, net::HttpResponse& response) const;
  void Spend(const net::HttpRequest& request, net::HttpResponse& response) const;
  void Respond(const engine::Decision& d, bool body_on_allow, net::HttpResponse& response) const;
  // Identity and approvals (http_api_identity.cc).
  // The agent token and override token a request presented, applied to `call`. On the decide
  // API the Authorization header is the agent's; on HTTP authz it belongs to the original call's
  // upstream, and the token comes in x-aegis-token. A refusal is counted under `door`.
  bool ApplyCaller(const net::HttpRequest& request, service::FrontDoor door,
                   engine::CallContext& call, net::HttpResponse& response) const;
  void Jwks(net::HttpResponse& response) const;
  void Tokens(const net::HttpRequest& request, net::HttpResponse& response) const;
  void Approvals(const net::HttpRequest& request, std::string_view path,
                 net::HttpResponse& response) const;
  // The credential name when the request's bearer secret holds `role`; otherwise answers 401
  // or 403 and returns nothing.
  std::optional<std::string> RequireRole(const net::HttpRequest& request, std::string_view role,
                                         net::HttpResponse& response) const;

  const service::Decider& decider_;
  service::PolicyStore& store_;
  std::function<common::Status()> reload_;
  size_t max_body_bytes_;
  const service::Identity* identity_;
};

// Shared by http_api.cc and http_api_identity.cc.
bool IsJson(const net::HttpRequest& request);
std::string Timestamp(int64_t unix_nanos);
void JsonBody(int status, std::string body, net::HttpResponse& response);

// Writes {"error":{"code":..., "message":...}} with `status`.
void ErrorResponse(int status, std::string_view code, std::string_view message,
                   net::HttpResponse& response);

}  // namespace aegis::frontdoors

#endif  // AEGIS_FRONTDOORS_HTTP_API_H_
