#include "cli/serve.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include "approvals/postgres_store.h"
#include "audit/sinks.h"
#include "audit/writer.h"
#include "telemetry/exporter.h"
#include "approvals/sqlite_store.h"
#include "frontdoors/extauthz_grpc.h"
#include "identity/keyring.h"
#include "frontdoors/http_api.h"
#include "frontdoors/proxy/proxy.h"
#include "limits/memory_store.h"
#include "limits/redis_store.h"
#include "net/http_server.h"
#include "service/config.h"
#include "service/decider.h"
#include "service/metrics.h"
#include "service/policy_store.h"
#include "service/watcher.h"

extern char** environ;

namespace aegis::cli {

namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

void Log(const service::Config& config, std::string_view level, const std::string& message) {
  static constexpr std::string_view kLevels[] = {"debug", "info", "warn", "error"};
  auto rank = [](std::string_view l) {
    for (int i = 0; i < 4; ++i) {
      if (kLevels[i] == l) return i;
    }
    return 1;
  };
  if (rank(level) < rank(config.log_level)) return;
  // One write(2) per line: threads log concurrently (the audit sinks among them) and stdout
  // (the stdout sink's trail lines) often shares the stream, so a line written in pieces
  // could be cut by another.
  std::string line = "aegis: " + std::string(level) + ": " + message + "\n";
  std::cerr.write(line.data(), static_cast<std::streamsize>(line.size()));
  std::cerr.flush();
}

std::map<std::string, std::string> Environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string_view::npos) env.emplace(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return env;
}

std::string HostOf(const std::string& address) {
  std::string host;
  int port;
  return net::ParseHostPort(address, host, port).ok() ? host : address;
}

}  // namespace

int Serve(const std::vector<std::string>& args) {
  std::optional<std::string> config_path, bundle, http_listen, grpc_listen, proxy_listen, redis_url;
  for (size_t i = 0; i < args.size(); ++i) {
    auto value = [&](std::optional<std::string>& out) {
      if (i + 1 >= args.size()) return false;
      out = args[++i];
      return true;
    };
    bool ok = true;
    if (args[i] == "--config") {
      ok = value(config_path);
    } else if (args[i] == "--bundle") {
      ok = value(bundle);
    } else if (args[i] == "--http") {
      ok = value(http_listen);
    } else if (args[i] == "--grpc") {
      ok = value(grpc_listen);
    } else if (args[i] == "--proxy") {
      ok = value(proxy_listen);
    } else if (args[i] == "--redis") {
      ok = value(redis_url);
    } else {
      std::cerr << "aegis: serve: unknown argument " << args[i] << "\n";
      return kUsage;
    }
    if (!ok) {
      std::cerr << "aegis: serve: " << args[i] << " needs a value\n";
      return kUsage;
    }
  }

  service::Config config;
  auto env = Environment();
  if (!config_path && env.count("AEGIS_CONFIG")) config_path = env["AEGIS_CONFIG"];
  if (config_path) {
    common::Status st = service::LoadConfigFile(*config_path, config);
    if (!st.ok()) {
      std::cerr << st.message() << "\naegis: serve: the configuration has errors\n";
      return kFailed;
    }
  }
  service::ApplyEnvironment(env, config);
  if (bundle) config.bundle = *bundle;
  if (http_listen) config.http_listen = *http_listen;
  if (grpc_listen) config.grpc_listen = *grpc_listen;
  if (proxy_listen) {
    config.proxy.enabled = *proxy_listen != "off";
    if (config.proxy.enabled) config.proxy.listen = *proxy_listen;
  }
  if (redis_url) {
    config.redis_url = *redis_url;
    config.limit_store = "redis";
  }
  if (config.limits_fail_mode != "fail_closed" && config.limits_fail_mode != "fail_open") {
    std::cerr << "aegis: serve: the limits fail mode must be fail_closed or fail_open, not \""
              << config.limits_fail_mode << "\"\n";
    return kFailed;
  }

  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  if (ec) {
    std::cerr << "aegis: serve: cannot create data_dir " << config.data_dir << ": "
              << ec.message() << "\n";
    return kFailed;
  }

  // Block the signals we handle before any thread starts, so every thread inherits the mask
  // and only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  service::Metrics metrics;
  std::unique_ptr<limits::LimitStore> limit_store;
  if (config.limit_store == "redis") {
    limits::RedisOptions options;
    options.url = config.redis_url;
    options.key_prefix = config.redis_key_prefix;
    options.pool_size = config.redis_pool_size;
    options.timeout = config.redis_timeout;
    options.fail_mode = config.limits_fail_mode == "fail_open" ? limits::FailMode::kFailOpen
                                                               : limits::FailMode::kFailClosed;
    options.log = [&config](std::string_view level, const std::string& message) {
      Log(config, level, message);
    };
    auto redis = limits::RedisLimitStore::Create(std::move(options));
    if (!redis.ok()) {
      std::cerr << "aegis: serve: " << redis.status().message() << "\n";
      return kFailed;
    }
    // Not fatal: an outage at start is handled like any other, by the fail mode.
    if (common::Status st = (*redis)->Ping(); !st.ok()) {
      Log(config, "warn", "limits: " + st.message() + " (" + config.limits_fail_mode + ")");
    }
    limit_store = std::move(*redis);
  } else {
    limit_store = std::make_unique<limits::MemoryLimitStore>();
  }
  auto log = [&config](std::string_view level, const std::string& message) {
    Log(config, level, message);
  };

  // Identity: the keyring in the data dir signs agent and override tokens.
  int64_t now_seconds = service::Decider::NowUnixNanos() / 1'000'000'000;
  auto keyring = identity::Keyring::Open(config.data_dir + "/keys", now_seconds);
  if (!keyring.ok()) {
    std::cerr << "aegis: serve: " << keyring.status().message() << "\n";
    return kFailed;
  }
  service::Identity identity(std::move(*keyring), config.identity, limit_store.get(), log);

  // Approvals: SQLite in the data dir, or PostgreSQL shared by replicas; notifiers.
  std::unique_ptr<approvals::ApprovalStore> approval_store;
  if (config.approvals_store == "postgres") {
    auto pg = approvals::PostgresApprovalStore::Open(config.postgres_url);
    if (!pg.ok()) {
      std::cerr << "aegis: serve: approvals: " << pg.status().message() << "\n";
      return kFailed;
    }
    approval_store = std::move(*pg);
  } else {
    auto lite = approvals::SqliteApprovalStore::Open(config.data_dir + "/approvals.db");
    if (!lite.ok()) {
      std::cerr << "aegis: serve: approvals: " << lite.status().message() << "\n";
      return kFailed;
    }
    approval_store = std::move(*lite);
  }
  approvals::NotifyOptions notify_options;
  notify_options.public_url = config.public_url.empty()
                                  ? "http://" + config.http_listen
                                  : config.public_url;
  approvals::Notifier notifier(config.notifiers, notify_options, log);
  notifier.Start();

  // The key of sanitize rules' hash-style fingerprints: AEGIS_REDACTION_KEY, else one made on
  // first start and kept in the data dir, so fingerprints stay stable across restarts.
  std::string redaction_key = env.count("AEGIS_REDACTION_KEY") ? env["AEGIS_REDACTION_KEY"] : "";
  if (redaction_key.empty()) {
    auto key = service::LoadOrCreateSecret(config.data_dir + "/redaction.key");
    if (!key.ok()) {
      std::cerr << "aegis: serve: " << key.status().message() << "\n";
      return kFailed;
    }
    redaction_key = *key;
  } else if (redaction_key.size() < 32) {
    std::cerr << "aegis: serve: AEGIS_REDACTION_KEY needs at least 32 characters\n";
    return kFailed;
  }
  service::PolicyStore store(config.bundle, config.keep_versions, limit_store.get(), &identity,
                             redaction_key);
  auto notifiers_of = [&store](std::string_view rule_id, std::string_view tenant) {
    std::vector<std::string> names;
    if (auto active = store.Active()) {
      for (const auto& r : active->policy().rules) {
        if (r->id == rule_id && (r->tenant.empty() || r->tenant == tenant)) {
          names = r->approval.notify;
        }
      }
    }
    return names;
  };
  service::ApprovalService approval_service(std::move(approval_store), &notifier, notifiers_of,
                                            log);
  common::Status loaded = store.Reload();
  metrics.RecordReload(loaded.ok());
  if (!loaded.ok()) {
    std::cerr << loaded.message() << "\naegis: serve: the bundle " << config.bundle
              << " has errors; not starting\n";
    return kFailed;
  }
  // The audit trail: every decision recorded, off the hot path (docs/audit.md), and its lines
  // shipped to the configured sinks once durable (docs/audit-sinks.md).
  if (!config.audit_sinks.empty() && !config.audit_enabled) {
    std::string names;
    for (const auto& sink : config.audit_sinks) {
      names += (names.empty() ? "\"" : ", \"") + sink.name + "\"";
    }
    std::cerr << "aegis: serve: audit: sinks ship the audit trail's lines; audit.sinks ("
              << names << ") need audit.enabled: true\n";
    return kFailed;
  }
  std::unique_ptr<audit::Sinks> audit_sinks;
  if (!config.audit_sinks.empty()) {
    auto started = audit::Sinks::Start(config.audit_sinks, log);
    if (!started.ok()) {
      std::cerr << "aegis: serve: audit: " << started.status().message() << "\n";
      return kFailed;
    }
    audit_sinks = std::move(*started);
    metrics.AddCollector([&audit_sinks](std::string& out) { audit_sinks->AppendMetrics(out); });
  }
  std::unique_ptr<audit::Writer> audit_writer;
  if (config.audit_enabled) {
    audit::WriterOptions audit_options;
    audit_options.dir = config.audit_dir.empty() ? config.data_dir + "/audit" : config.audit_dir;
    audit_options.fsync_interval = config.audit_fsync_interval;
    audit_options.queue_capacity = config.audit_queue_capacity;
    audit_options.overflow = config.audit_overflow == "block"  ? audit::OverflowPolicy::kBlock
                             : config.audit_overflow == "drop" ? audit::OverflowPolicy::kDropAndCount
                                                               : audit::OverflowPolicy::kFailClosed;
    if (audit_sinks) {
      audit_options.on_durable = [sinks = audit_sinks.get()](std::string_view lines) {
        sinks->Publish(lines);
      };
    }
    auto opened = audit::Writer::Open(std::move(audit_options), log);
    if (!opened.ok()) {
      std::cerr << "aegis: serve: audit: " << opened.status().message() << "\n";
      return kFailed;
    }
    audit_writer = std::move(*opened);
    metrics.AddCollector([&audit_writer](std::string& out) { audit_writer->AppendMetrics(out); });
  }
  std::unique_ptr<telemetry::Exporter> traces;
  if (config.tracing_enabled) {
    telemetry::ExporterOptions trace_options;
    trace_options.endpoint = config.tracing_endpoint;
    trace_options.encoding = config.tracing_encoding == "json"
                                 ? telemetry::ExporterOptions::Encoding::kJson
                                 : telemetry::ExporterOptions::Encoding::kProtobuf;
    trace_options.service_name = config.tracing_service_name;
    if (common::Status st = telemetry::Exporter::Validate(trace_options); !st.ok()) {
      std::cerr << "aegis: serve: tracing: " << st.message() << "\n";
      return kFailed;
    }
    traces = std::make_unique<telemetry::Exporter>(trace_options, log);
    traces->Start();
    metrics.AddCollector([&traces](std::string& out) { traces->AppendMetrics(out); });
  }
  metrics.AddCollector([&approval_service](std::string& out) { approval_service.AppendMetrics(out); });
  service::Decider decider(store, metrics, &approval_service, audit_writer.get(), traces.get(),
                           config.tracing_sample_ratio);
  auto reload = [&]() {
    common::Status st = store.Reload();
    metrics.RecordReload(st.ok());
    if (st.ok()) {
      Log(config, "info",
          "policy " + store.Active()->policy().name + " version " +
              store.Active()->policy().version + " active");
    } else {
      Log(config, "error", "reload refused, the active version keeps serving:\n" + st.message());
    }
    return st;
  };

  // The sidecar / forward proxy (docs/proxy.md).
  std::unique_ptr<proxy::Proxy> sidecar;
  if (config.proxy.enabled) {
    auto routes = proxy::BuildRoutes(config.proxy.routes, [](const char* name) {
      return std::getenv(name);
    });
    common::Status st = routes.ok() ? common::OkStatus() : routes.status();
    if (st.ok()) {
      sidecar = std::make_unique<proxy::Proxy>(config.proxy, std::move(*routes), decider,
                                               &identity, log);
      st = sidecar->Start();
    }
    if (!st.ok()) {
      std::cerr << "aegis: serve: " << st.message() << "\n";
      return kFailed;
    }
    metrics.AddCollector([&sidecar](std::string& out) { sidecar->AppendMetrics(out); });
    std::cout << "aegis: proxy listening on " << HostOf(config.proxy.listen) << ":"
              << sidecar->port() << std::endl;
  }
  frontdoors::HttpApi api(decider, store, reload, config.max_body_bytes, &identity);
  net::HttpServerOptions http_options;
  http_options.address = config.http_listen;
  http_options.max_header_bytes = config.max_header_bytes;
  http_options.max_body_bytes = config.max_body_bytes;
  http_options.max_connections = config.max_connections;
  http_options.idle_timeout = config.idle_timeout;
  http_options.request_timeout = config.request_timeout;
  // Decisions that wait on Redis block their thread for a round trip: with Redis, as many
  // threads as pooled connections keep the pool busy.
  http_options.threads = static_cast<int>(config.http_threads);
  if (http_options.threads == 0 && config.limit_store == "redis") {
    http_options.threads = static_cast<int>(
        std::max<size_t>(std::thread::hardware_concurrency(), config.redis_pool_size));
  }
  http_options.on_refused = [&](int) {
    metrics.RecordBadRequest(static_cast<int>(service::FrontDoor::kDecideApi));
  };
  net::HttpServer http(http_options, [&](const net::HttpRequest& req, net::HttpResponse& resp) {
    api.Handle(req, resp);
  });
  common::Status started = http.Start();
  if (!started.ok()) {
    std::cerr << "aegis: serve: " << started.message() << "\n";
    return kFailed;
  }
  std::cout << "aegis: http listening on " << HostOf(config.http_listen) << ":" << http.port()
            << std::endl;
  frontdoors::GrpcServerOptions grpc_options;
  grpc_options.max_body_bytes = config.max_body_bytes;
  grpc_options.identity = &identity;
  auto grpc = frontdoors::StartGrpcServer(config.grpc_listen, decider, grpc_options);
  if (!grpc.ok()) {
    std::cerr << "aegis: serve: " << grpc.status().message() << "\n";
    http.Stop(std::chrono::milliseconds(0));
    return kFailed;
  }
  std::cout << "aegis: grpc listening on " << HostOf(config.grpc_listen) << ":" << (*grpc)->port()
            << std::endl;

  std::optional<service::BundleWatcher> watcher;
  if (config.watch) {
    watcher.emplace(config.bundle, config.debounce, [&] { (void)reload(); });
    common::Status st = watcher->Start();
    if (!st.ok()) Log(config, "warn", "not watching the bundle: " + st.message());
  }
  std::cout << "aegis: ready (policy " << store.Active()->policy().name << " version "
            << store.Active()->policy().version << ")" << std::endl;

  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      (void)reload();
      if (audit_sinks) audit_sinks->Reopen();  // log rotation of file sinks
      // Keys rotated by `aegis token rotate` (or another replica) since the start.
      if (common::Status st = identity.keyring().Reload(); !st.ok()) {
        Log(config, "error", "keyring reload refused, the keys in use stay: " + st.message());
      } else {
        Log(config, "info", "keyring: signing with key " + identity.keyring().ActiveKid());
      }
      continue;
    }
    break;
  }
  Log(config, "info", "draining");
  if (watcher) watcher->Stop();
  if (sidecar) sidecar->Stop(config.drain_timeout);
  http.Stop(config.drain_timeout);
  (*grpc)->Shutdown(config.drain_timeout);
  notifier.Stop(std::chrono::milliseconds(2000));
  if (audit_writer) audit_writer->Close();
  if (audit_sinks) audit_sinks->Stop(std::chrono::milliseconds(2000));
  if (traces) traces->Stop(std::chrono::milliseconds(2000));
  std::cout << "aegis: stopped" << std::endl;
  return kOk;
}

}  // namespace aegis::cli
