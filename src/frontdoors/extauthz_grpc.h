// Envoy ext_authz over gRPC: envoy.service.auth.v3.Authorization/Check and grpc.health.v1.
//
// The front door only translates (DESIGN.md section 2): a CheckRequest becomes a CallContext
// through the decide API's own parser (engine::CallFromJson), and the Decision becomes a
// CheckResponse (DESIGN.md section 5, docs/extauthz-grpc.md). The mapping functions are pure, so
// they are tested without a server; ExtAuthzService adds the Decider and the metrics, and
// StartGrpcServer puts both services on a listening port.
//
// Every answer, including bad input and "no policy yet", is a CheckResponse on a gRPC call that
// succeeded: Envoy enforces a non-OK CheckResponse status as a denial, whereas a failed gRPC
// call is governed by `failure_mode_allow`, which an operator may have set to let traffic
// through. Bad input must never become an allow.
#ifndef AEGIS_FRONTDOORS_EXTAUTHZ_GRPC_H_
#define AEGIS_FRONTDOORS_EXTAUTHZ_GRPC_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/json.h"
#include "common/status.h"
#include "engine/call_context.h"
#include "engine/decision.h"
#include "envoy/service/auth/v3/external_auth.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "service/decider.h"
#include "service/identity.h"

namespace aegis::frontdoors {

namespace authv3 = ::envoy::service::auth::v3;

struct ExtAuthzOptions {
  // Limits for the JSON body; a body over max_bytes is ResourceExhausted (HTTP 413).
  common::JsonLimits json;
  // Agent tokens (x-aegis-token) and override tokens (x-aegis-override) from the request's
  // headers; without it they are refused.
  const service::Identity* identity = nullptr;
};

// Maps a CheckRequest, as Envoy's ext_authz filter sends it, to a call (docs/extauthz-grpc.md):
//
// - request: method, host and path (with its query string) from the HttpRequest, which must
//   agree with the pseudo-headers :method, :path, :authority and the Host header when those are
//   present; the other headers (lower-cased; hop-by-hop, content-length and x-aegis-* left out;
//   `header_map` entries with the same name joined with ", ") become request.headers.
// - params: the body (`body` or `raw_body`) when content-type is application/json; it must be a
//   JSON object. Other bodies are not read (params stays {}).
// - agent, tenant, tool, action: each from the context extension of that name (set per route in
//   Envoy's config), else from the header x-aegis-<name>; the agent, failing both, is the
//   source peer's principal (mTLS identity) as is.
//
// The result is built as decide-API call JSON and parsed by engine::CallFromJson, so names,
// hosts, paths, headers and queries follow exactly the rules of POST /v1/decide. Returns
// InvalidArgument (or ResourceExhausted for an oversize body) with a message on bad input.
// `now_unix_nanos` stamps the call.
common::StatusOr<engine::CallContext> CallFromCheckRequest(const authv3::CheckRequest& request,
                                                           int64_t now_unix_nanos,
                                                           const ExtAuthzOptions& options = {});

// Whether the request carried a body (`body` or `raw_body` not empty).
bool HasBody(const authv3::CheckRequest& request);

// Fills `out` with the answer to a decided call. `request_had_body`: see HasBody.
// `refusal_http_status`: what the HTTP front doors answer for this decision
// (service::Decider::HttpStatus); used for denied responses, and 403 when it is not 4xx.
//
// - effective allow (allow, or anything in shadow mode): status OK and an OkHttpResponse whose
//   headers x-aegis-decision, -decision-id, -policy-version and -enforced replace any the client
//   sent, upstream, and are also added to the client's response.
// - sanitize (enforced): ext_authz cannot rewrite the body, so a request with a body is refused:
//   PERMISSION_DENIED, HTTP 403, the decision JSON with an added
//   "error": {"code": "sanitize_unsupported", ...}. Without a body there is nothing to redact,
//   and the answer is as for allow.
// - deny, approval_needed: PERMISSION_DENIED and a DeniedHttpResponse with the HTTP status, the
//   same headers plus content-type application/json, and the decision JSON as body.
void DecisionToCheckResponse(const engine::Decision& decision, bool request_had_body,
                             int refusal_http_status, authv3::CheckResponse* out);

// Fills `out` for a request refused before any decision: INVALID_ARGUMENT with the message
// (HTTP 400, or 413 when `status` is ResourceExhausted), body
// {"error":{"code":"invalid_call","message":...}}.
void BadInputToCheckResponse(const common::Status& status, authv3::CheckResponse* out);

// Fills `out` for a call that arrived before any policy was loaded: UNAVAILABLE, HTTP 503,
// {"error":{"code":"not_ready",...}}.
void NotReadyToCheckResponse(authv3::CheckResponse* out);

// Authorization/Check. Thread-safe; the decider must outlive the service.
class ExtAuthzService final : public authv3::Authorization::CallbackService {
 public:
  explicit ExtAuthzService(const service::Decider& decider, ExtAuthzOptions options = {})
      : decider_(decider), options_(options) {}

  // Answers inline on gRPC's thread: a decision takes microseconds and does no I/O.
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const authv3::CheckRequest* request,
                                  authv3::CheckResponse* response) override;

  // The whole answer to one request, without gRPC: map, decide, record, map back.
  void Answer(const authv3::CheckRequest& request, authv3::CheckResponse* response) const;

 private:
  const service::Decider& decider_;
  ExtAuthzOptions options_;
};

// grpc.health.v1.Health/Check: SERVING while a policy is active, NOT_SERVING before. The
// service name is not checked: "" and "envoy.service.auth.v3.Authorization" both mean this
// server. Watch is not implemented (UNIMPLEMENTED); Envoy's and Kubernetes' probes use Check.
class HealthService final : public ::grpc::health::v1::Health::CallbackService {
 public:
  explicit HealthService(const service::PolicyStore& store) : store_(store) {}

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const ::grpc::health::v1::HealthCheckRequest* request,
                                  ::grpc::health::v1::HealthCheckResponse* response) override;

 private:
  const service::PolicyStore& store_;
};

struct GrpcServerOptions {
  // The largest body accepted; gRPC messages may be this plus kHeaderSlack bytes. Keep Envoy's
  // with_request_body.max_request_bytes at or below it (docs/extauthz-grpc.md).
  size_t max_body_bytes = 1 << 20;
  static constexpr size_t kHeaderSlack = 256 << 10;
  const service::Identity* identity = nullptr;
};

// A running gRPC listener with the ext_authz and health services. Destroying it shuts it down
// (without a drain period).
class GrpcServer {
 public:
  GrpcServer(std::unique_ptr<ExtAuthzService> authz, std::unique_ptr<HealthService> health,
             std::unique_ptr<grpc::Server> server, int port)
      : authz_(std::move(authz)),
        health_(std::move(health)),
        server_(std::move(server)),
        port_(port) {}
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // The bound port (the one picked, when the address asked for port 0).
  int port() const { return port_; }
  // Stops accepting calls and waits up to `drain` for calls in flight, then cancels the rest.
  // Safe to call more than once and from any thread.
  void Shutdown(std::chrono::milliseconds drain);
  grpc::Server* server() const { return server_.get(); }

 private:
  std::unique_ptr<ExtAuthzService> authz_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> server_;
  int port_;
  std::once_flag shutdown_once_;
};

// Listens on `address` ("127.0.0.1:9191", "[::1]:0", "0.0.0.0:9191"; port 0 picks a free
// port) without TLS, and serves Authorization/Check and Health/Check until shut down. The
// decider must outlive the server. Returns Unavailable when the address cannot be bound.
common::StatusOr<std::unique_ptr<GrpcServer>> StartGrpcServer(
    const std::string& address, const service::Decider& decider,
    const GrpcServerOptions& options = {});

}  // namespace aegis::frontdoors

#endif  // AEGIS_FRONTDOORS_EXTAUTHZ_GRPC_H_
