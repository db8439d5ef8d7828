// Config: what `aegis serve` reads from aegis.yaml, the environment and its flags
// (docs/serve.md). Every field has a default that serves.
#ifndef AEGIS_SERVICE_CONFIG_H_
#define AEGIS_SERVICE_CONFIG_H_

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "approvals/notify.h"
#include "audit/sinks.h"
#include "common/status.h"
#include "service/identity.h"

namespace aegis::service {

// One reverse-proxy route of the sidecar (section proxy.routes, docs/proxy.md): requests under
// `prefix` go to `upstream` as calls of `tool`, with the tool's real credential injected.
struct ProxyRoute {
  std::string name;
  std::string tool;      // the policy's tool; default: the route's name
  std::string prefix;    // default "/<name>"
  std::string upstream;  // http(s)://host[:port], no path
  // The upstream credential, injected after the decision: a header or a query parameter whose
  // value is `format` with "{secret}" replaced by the secret from the environment or a file.
  std::string credential_header;
  std::string credential_query;
  std::string credential_format = "{secret}";
  std::string secret_env;
  std::string secret_file;
  bool redact_response = false;  // redact PII in JSON responses
  std::string cost_header;       // the actual cost in dollars, from this response header
  std::string cost_json;         // ... or from this dotted path in a JSON response
  bool tunnel = false;           // CONNECT to the upstream's host is allowed (opaque traffic)
  // An MCP server (streamable HTTP; docs/mcp.md): `upstream` is its endpoint URL, path
  // included; tools/list is filtered and every tools/call decided (action = the MCP tool).
  bool mcp = false;
  bool redact_results = false;  // MCP: redact PII in tool results
};

// The sidecar / forward proxy listener (section proxy).
struct ProxyConfig {
  bool enabled = true;
  std::string listen = "127.0.0.1:15001";
  size_t threads = 0;  // 0: one per core
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 10 << 20;     // request and buffered response bodies
  size_t max_connections = 10000;
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds request_timeout{30000};   // a request must arrive whole within it
  std::chrono::milliseconds connect_timeout{5000};    // upstream connect and TLS handshake
  std::chrono::milliseconds upstream_timeout{60000};  // upstream response, whole
  size_t max_idle_per_upstream = 32;                  // pooled keep-alive connections
  std::string ca_file;  // PEM CAs for upstream TLS; empty: the system's
  std::vector<ProxyRoute> routes;
};

struct Config {
  std::string bundle = "examples/quickstart";
  std::string data_dir = "data";
  std::string log_level = "info";
  std::string http_listen = "127.0.0.1:8181";
  std::string grpc_listen = "127.0.0.1:9191";
  size_t http_threads = 0;  // 0: one per core, or the Redis pool size when limits use Redis
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1 << 20;
  size_t max_connections = 10000;
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds request_timeout{10000};
  std::chrono::milliseconds drain_timeout{10000};
  size_t keep_versions = 10;
  bool watch = true;
  std::chrono::milliseconds debounce{200};
  // Where rate-limit and budget counters live (section limit_store).
  std::string limit_store = "memory";  // memory or redis
  std::string redis_url = "redis://127.0.0.1:6379";
  size_t redis_pool_size = 16;
  std::chrono::milliseconds redis_timeout{250};
  std::string redis_key_prefix = "aegis:";
  std::string limits_fail_mode = "fail_closed";  // or fail_open
  // Agent tokens, override tokens and credentials (section identity).
  IdentityOptions identity;
  // Approvals (section approvals) and their notifiers (section notifiers).
  std::string approvals_store = "sqlite";  // sqlite (in data_dir) or postgres
  std::string postgres_url;
  std::string public_url;  // how approvers reach this API, for links in notifications
  std::vector<approvals::NotifierConfig> notifiers;
  // The audit trail (section audit, docs/audit.md).
  bool audit_enabled = true;
  std::string audit_dir;  // empty: <data_dir>/audit
  std::chrono::milliseconds audit_fsync_interval{10};
  size_t audit_queue_capacity = 65536;
  std::string audit_overflow = "fail_closed";  // or block, drop
  std::vector<audit::SinkOptions> audit_sinks;  // where the trail's lines are shipped (SIEMs)
  // Traces (section tracing, docs/tracing.md): off unless an endpoint is configured.
  bool tracing_enabled = false;
  std::string tracing_endpoint = "http://127.0.0.1:4318/v1/traces";
  std::string tracing_encoding = "protobuf";  // or json
  double tracing_sample_ratio = 1.0;
  std::string tracing_service_name = "aegis";
  ProxyConfig proxy;
};

// Reads `path` (YAML) over the defaults. Unknown keys, wrong types and out-of-range values are
// errors, reported all at once as "file:line:col: error[code]: message" lines.
common::Status LoadConfigFile(const std::string& path, Config& config);

// Applies AEGIS_BUNDLE, AEGIS_DATA_DIR, AEGIS_LOG_LEVEL, AEGIS_HTTP_LISTEN, AEGIS_GRPC_LISTEN,
// AEGIS_PROXY_LISTEN,
// AEGIS_REDIS_URL (which also selects the redis store) and AEGIS_LIMITS_FAIL_MODE from `env`
// (name → value).
void ApplyEnvironment(const std::map<std::string, std::string>& env, Config& config);

// A secret kept in a file of the data dir: read when it exists (it must be 0600), else 32
// random bytes written there as 64 hex characters, 0600, and returned.
common::StatusOr<std::string> LoadOrCreateSecret(const std::string& path);

}  // namespace aegis::service

#endif  // AEGIS_SERVICE_CONFIG_H_
