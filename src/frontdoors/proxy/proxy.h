// Proxy: the sidecar and forward-proxy front door (docs/proxy.md, DESIGN.md section 5).
//
// An agent's HTTP client sends its calls here: on a reverse-proxy route
// (`http://localhost:15001/stripe/v1/charges` → `https://api.stripe.com/v1/charges`) or, with
// HTTP_PROXY, in absolute form (`GET http://api.stripe.com/v1/charges`). For each request the
// proxy refuses hostile targets with 400 (request_target.h), turns the request into a
// CallContext (method, host, path, headers; params from the JSON body and the query), asks the
// Decider, and then either answers the refusal (403/429/402/503 with the decision's headers and
// JSON) or forwards the call — the body rewritten when the decision sanitized it, the agent's
// own credentials removed and the route's real upstream credential injected — over a pooled
// keep-alive connection, originating TLS with certificate and host-name verification. On the
// way back it can redact PII from JSON responses and settle the decision's budget reservation
// with the actual cost the upstream reports.
//
// One I/O thread per core, each with its own SO_REUSEPORT acceptor and upstream connection
// pool; sessions are C++20 coroutines on Boost.Asio.
#ifndef AEGIS_FRONTDOORS_PROXY_PROXY_H_
#define AEGIS_FRONTDOORS_PROXY_PROXY_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "net/http_client.h"
#include "service/config.h"
#include "service/decider.h"
#include "service/identity.h"

namespace aegis::proxy {

// A route ready to serve: validated, its secret read.
struct Route {
  std::string name;
  std::string tool;
  std::string prefix;  // "/stripe": matches "/stripe" and "/stripe/..."
  net::Url upstream;   // scheme, host, port; target "/"
  std::string credential_header;  // lower case; empty when none
  std::string credential_query;   // empty when none
  std::string credential_value;   // the formatted secret
  bool redact_response = false;
  std::string cost_header;             // lower case
  std::vector<std::string> cost_json;  // path segments
  bool tunnel = false;
  bool mcp = false;  // an MCP server: upstream.target is its endpoint
  bool redact_results = false;
};

// Validates the configured routes and reads their secrets: upstream an http(s) URL without
// path (an MCP server's may have one), query or userinfo; prefix "/" followed by path characters, no trailing '/', unique and
// not nested in another; at most one of credential header and query, with a secret from
// exactly one of secret_env (looked up with `getenv`) and secret_file (mode 0600 or stricter,
// one line); format containing "{secret}". Errors (InvalidArgument) name the route and the field,
// never a secret.
common::StatusOr<std::vector<Route>> BuildRoutes(
    const std::vector<service::ProxyRoute>& routes,
    const std::function<const char*(const char*)>& getenv);

class Proxy {
 public:
  using LogFn = std::function<void(std::string_view level, const std::string& message)>;

  // `decider`, `identity` (optional) and `limits` (optional, for settling actual costs) must
  // outlive the proxy.
  Proxy(service::ProxyConfig config, std::vector<Route> routes, const service::Decider& decider,
        const service::Identity* identity, LogFn log);
  ~Proxy();  // Stop(0)
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Binds the listener and starts the I/O threads. Returns InvalidArgument for a bad listen
  // address or CA file, and Unavailable when the address cannot be bound.
  common::Status Start();
  // The bound port, after Start (useful with port 0).
  int port() const;
  // Stops accepting, lets requests in flight finish for up to `drain`, then closes every
  // connection and joins the threads. Idempotent.
  void Stop(std::chrono::milliseconds drain);

  // Prometheus text: aegis_proxy_requests_total{result=...}, aegis_proxy_upstream_connections_total
  // {kind="new|reused"}, aegis_proxy_active_requests.
  void AppendMetrics(std::string& out) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegis::proxy

#endif  // AEGIS_FRONTDOORS_PROXY_PROXY_H_
