// HttpApi: the routes of the HTTP listener (docs/serve.md): the decide API, the policy API,
// HTTP authorization for Envoy's HTTP ext_authz and nginx auth_request, health and metrics.
// It only translates between HTTP and CallContext/Decision; the decision is the Decider's.
#ifndef AEGIS_FRONTDOORS_HTTP_API_H_
#define AEGIS_FRONTDOORS_HTTP_API_H_

#include <functional>

#include "common/status.h"
#include "net/http_server.h"
#include "service/decider.h"

namespace aegis::frontdoors {

class HttpApi {
 public:
  // `reload` recompiles the bundle (POST /v1/policy/reload); it returns the compiler's errors
  // when the bundle is refused.
  HttpApi(const service::Decider& decider, service::PolicyStore& store,
          std::function<common::Status()> reload, size_t max_body_bytes);

  // Routes one request. Never throws; every error is a JSON error response.
  void Handle(const net::HttpRequest& request, net::HttpResponse& response) const;

 private:
  void Decide(const net::HttpRequest& request, net::HttpResponse& response) const;
  void Authorize(const net::HttpRequest& request, net::HttpResponse& response) const;
  void PolicyInfo(net::HttpResponse& response) const;
  void Versions(net::HttpResponse& response) const;
  void Reload(net::HttpResponse& response) const;
  void Rollback(const net::HttpRequest& request, net::HttpResponse& response) const;
  void Usage(const net::HttpRequest& request, net::HttpResponse& response) const;
  void Spend(const net::HttpRequest& request, net::HttpResponse& response) const;
  void Respond(const engine::Decision& d, bool body_on_allow, net::HttpResponse& response) const;

  const service::Decider& decider_;
  service::PolicyStore& store_;
  std::function<common::Status()> reload_;
  size_t max_body_bytes_;
};

// Writes {"error":{"code":..., "message":...}} with `status`.
void ErrorResponse(int status, std::string_view code, std::string_view message,
                   net::HttpResponse& response);

}  // namespace aegis::frontdoors

#endif  // AEGIS_FRONTDOORS_HTTP_API_H_
