#include "service/config.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "common/strings.h"
#include "policy/document.h"

namespace aegis::service {

using common::StrCat;
using policy::DocNode;

namespace {

class ConfigReader {
 public:
  ConfigReader(Config& config, policy::Diagnostics& diags) : c_(config), d_(diags) {}

  void Read(const DocNode& root) {
    if (root.kind == DocNode::Kind::kNull) return;  // an empty file means all defaults
    if (!root.is_map()) return Error(root, "wrong-type", "the configuration must be a map");
    for (const auto& m : root.members) {
      const std::string& k = m.key.scalar;
      if (k == "bundle") {
        String(m.value, c_.bundle);
      } else if (k == "data_dir") {
        String(m.value, c_.data_dir);
      } else if (k == "log_level") {
        if (String(m.value, c_.log_level) && c_.log_level != "debug" && c_.log_level != "info" &&
            c_.log_level != "warn" && c_.log_level != "error") {
          Error(m.value, "wrong-value", "log_level must be debug, info, warn or error");
        }
      } else if (k == "listeners") {
        Section(m.value, "listeners", [&](const std::string& key, const DocNode& v) {
          if (key == "http") return String(v, c_.http_listen);
          if (key == "grpc") return String(v, c_.grpc_listen);
          if (key == "http_threads") return Size(v, c_.http_threads, 0, 256);
          return false;
        });
      } else if (k == "limits") {
        Section(m.value, "limits", [&](const std::string& key, const DocNode& v) {
          if (key == "max_header_bytes") return Size(v, c_.max_header_bytes, 1024, 1 << 20);
          if (key == "max_body_bytes") return Size(v, c_.max_body_bytes, 1024, 64 << 20);
          if (key == "max_connections") return Size(v, c_.max_connections, 1, 1'000'000);
          if (key == "idle_timeout_ms") return Millis(v, c_.idle_timeout);
          if (key == "request_timeout_ms") return Millis(v, c_.request_timeout);
          if (key == "drain_timeout_ms") return Millis(v, c_.drain_timeout);
          return false;
        });
      } else if (k == "policy") {
        Section(m.value, "policy", [&](const std::string& key, const DocNode& v) {
          if (key == "keep_versions") return Size(v, c_.keep_versions, 1, 1000);
          if (key == "watch") return Bool(v, c_.watch);
          if (key == "debounce_ms") return Millis(v, c_.debounce);
          return false;
        });
      } else if (k == "identity") {
        Section(m.value, "identity", [&](const std::string& key, const DocNode& v) {
          IdentityOptions& id = c_.identity;
          if (key == "issuer") return String(v, id.issuer);
          if (key == "audience") return String(v, id.audience);
          if (key == "default_token_ttl_seconds") return Seconds(v, id.default_ttl_seconds);
          if (key == "max_token_ttl_seconds") return Seconds(v, id.max_ttl_seconds);
          if (key == "override_token_ttl_seconds") return Seconds(v, id.override_ttl_seconds);
          if (key == "leeway_seconds") {
            int64_t s;
            if (Integer(v, s, 0, 300)) id.leeway_seconds = s;
            return true;
          }
          if (key == "require_agent_token") return Bool(v, id.require_agent_token);
          if (key == "credentials") return Credentials(v);
          return false;
        });
      } else if (k == "approvals") {
        Section(m.value, "approvals", [&](const std::string& key, const DocNode& v) {
          if (key == "store") return OneOf(v, c_.approvals_store, {"sqlite", "postgres"});
          if (key == "postgres_url") return String(v, c_.postgres_url);
          if (key == "public_url") return String(v, c_.public_url);
          return false;
        });
      } else if (k == "audit") {
        Section(m.value, "audit", [&](const std::string& key, const DocNode& v) {
          if (key == "enabled") return Bool(v, c_.audit_enabled);
          if (key == "dir") return String(v, c_.audit_dir);
          if (key == "fsync_interval_ms") return Millis(v, c_.audit_fsync_interval);
          if (key == "queue_capacity") return Size(v, c_.audit_queue_capacity, 1, 10'000'000);
          if (key == "overflow") return OneOf(v, c_.audit_overflow, {"fail_closed", "block", "drop"});
          if (key == "sinks") return Sinks(v);
          return false;
        });
      } else if (k == "tracing") {
        Section(m.value, "tracing", [&](const std::string& key, const DocNode& v) {
          if (key == "enabled") return Bool(v, c_.tracing_enabled);
          if (key == "endpoint") return String(v, c_.tracing_endpoint);
          if (key == "encoding") return OneOf(v, c_.tracing_encoding, {"protobuf", "json"});
          if (key == "service_name") return String(v, c_.tracing_service_name);
          if (key == "sample_ratio") {
            common::Json j;
            policy::Diagnostics scratch;
            if (!v.is_scalar() || v.quoted || !policy::ToJson(v, j, scratch) || !j.is_number() ||
                j.as_double() < 0 || j.as_double() > 1) {
              Error(v, "wrong-value", "sample_ratio is a number from 0 to 1");
            } else {
              c_.tracing_sample_ratio = j.as_double();
            }
            return true;
          }
          return false;
        });
      } else if (k == "notifiers") {
        Notifiers(m.value);
      } else if (k == "proxy") {
        Proxy(m.value);
      } else if (k == "limit_store") {
        Section(m.value, "limit_store", [&](const std::string& key, const DocNode& v) {
          if (key == "store") return OneOf(v, c_.limit_store, {"memory", "redis"});
          if (key == "redis_url") return String(v, c_.redis_url);
          if (key == "redis_pool_size") return Size(v, c_.redis_pool_size, 1, 1024);
          if (key == "redis_timeout_ms") {
            Millis(v, c_.redis_timeout);
            if (c_.redis_timeout.count() < 1) Error(v, "wrong-value", "expected at least 1 ms");
            return true;
          }
          if (key == "key_prefix") return String(v, c_.redis_key_prefix);
          if (key == "fail_mode") {
            return OneOf(v, c_.limits_fail_mode, {"fail_closed", "fail_open"});
          }
          return false;
        });
      } else {
        Error(m.key, "unknown-key",
              StrCat("unknown key \"", k,
                     "\" (allowed: bundle, data_dir, log_level, listeners, limits, "
                     "limit_store, identity, approvals, notifiers, audit, tracing, proxy, policy)"));
      }
    }
  }

 private:
  void Error(const DocNode& at, std::string code, std::string message) {
    d_.Error(at.location, std::move(code), std::move(message));
  }

  template <typename F>
  void Section(const DocNode& n, std::string_view name, F field) {
    if (!n.is_map()) return Error(n, "wrong-type", StrCat(name, " must be a map"));
    for (const auto& m : n.members) {
      bool known = field(m.key.scalar, m.value);
      if (!known) {
        Error(m.key, "unknown-key", StrCat("unknown key \"", m.key.scalar, "\" in ", name));
      }
    }
  }

  bool String(const DocNode& n, std::string& out) {
    if (!n.is_scalar() || n.scalar.empty()) {
      Error(n, "wrong-type", "expected a non-empty string");
      return true;
    }
    out = n.scalar;
    return true;
  }

  bool Seconds(const DocNode& n, int64_t& out) {
    int64_t v;
    if (Integer(n, v, 1, 86'400)) out = v;
    return true;
  }

  // credentials: [{name, token_sha256, roles: [admin|issuer|approver]}]
  bool Credentials(const DocNode& n) {
    if (!n.is_sequence()) {
      Error(n, "wrong-type", "credentials must be a list");
      return true;
    }
    for (const auto& item : n.items) {
      Credential cred;
      Section(item, "a credential", [&](const std::string& key, const DocNode& v) {
        if (key == "name") return String(v, cred.name);
        if (key == "token_sha256") {
          String(v, cred.token_sha256);
          bool hex = cred.token_sha256.size() == 64 &&
                     cred.token_sha256.find_first_not_of("0123456789abcdef") == std::string::npos;
          if (!hex) {
            Error(v, "wrong-value",
                  "token_sha256 is the lower-case hex SHA-256 of the secret (aegis token hash)");
          }
          return true;
        }
        if (key == "roles") {
          if (!v.is_sequence() || v.items.empty()) {
            Error(v, "wrong-type", "roles must be a list of admin, issuer, approver");
            return true;
          }
          for (const auto& r : v.items) {
            std::string role;
            OneOf(r, role, {"admin", "issuer", "approver"});
            if (!role.empty()) cred.roles.push_back(role);
          }
          return true;
        }
        return false;
      });
      if (cred.name.empty() || cred.token_sha256.empty() || cred.roles.empty()) {
        Error(item, "missing-key", "a credential needs name, token_sha256 and roles");
        continue;
      }
      for (const auto& other : c_.identity.credentials) {
        if (other.name == cred.name) Error(item, "duplicate-id", "credential " + cred.name + " is listed twice");
      }
      c_.identity.credentials.push_back(std::move(cred));
    }
    return true;
  }

  // notifiers: {NAME: {kind: slack|teams|webhook, url, headers: {..}}}
  void Notifiers(const DocNode& n) {
    if (!n.is_map()) return Error(n, "wrong-type", "notifiers must be a map of names");
    for (const auto& m : n.members) {
      approvals::NotifierConfig nc;
      nc.name = m.key.scalar;
      std::string kind;
      Section(m.value, "a notifier", [&](const std::string& key, const DocNode& v) {
        if (key == "kind") return OneOf(v, kind, {"slack", "teams", "webhook"});
        if (key == "url") return String(v, nc.url);
        if (key == "headers") return Headers(v, nc.headers);
        return false;
      });
      nc.kind = kind == "slack"   ? approvals::NotifierConfig::Kind::kSlack
                : kind == "teams" ? approvals::NotifierConfig::Kind::kTeams
                                  : approvals::NotifierConfig::Kind::kWebhook;
      if (kind.empty() || nc.url.empty()) {
        Error(m.key, "missing-key", "notifier " + nc.name + " needs a kind and a url");
      }
      c_.notifiers.push_back(std::move(nc));
    }
    common::Status st = approvals::Notifier::Validate(c_.notifiers);
    if (!st.ok()) Error(n, "wrong-value", st.message());
  }

  void Proxy(const DocNode& n) {
    ProxyConfig& p = c_.proxy;
    Section(n, "proxy", [&](const std::string& key, const DocNode& v) {
      if (key == "enabled") return Bool(v, p.enabled);
      if (key == "listen") return String(v, p.listen);
      if (key == "threads") return Size(v, p.threads, 0, 256);
      if (key == "max_header_bytes") return Size(v, p.max_header_bytes, 1024, 1 << 20);
      if (key == "max_body_bytes") return Size(v, p.max_body_bytes, 1024, 1 << 30);
      if (key == "max_connections") return Size(v, p.max_connections, 1, 1'000'000);
      if (key == "idle_timeout_ms") return Millis(v, p.idle_timeout);
      if (key == "request_timeout_ms") return Millis(v, p.request_timeout);
      if (key == "connect_timeout_ms") return Millis(v, p.connect_timeout);
      if (key == "upstream_timeout_ms") return Millis(v, p.upstream_timeout);
      if (key == "max_idle_per_upstream") return Size(v, p.max_idle_per_upstream, 0, 10'000);
      if (key == "ca_file") return String(v, p.ca_file);
      if (key == "routes") return Routes(v);
      return false;
    });
  }

  // proxy.routes: {NAME: {upstream, tool, prefix, credential: {...}, ...}}
  bool Routes(const DocNode& n) {
    if (!n.is_map()) {
      Error(n, "wrong-type", "routes must be a map of names");
      return true;
    }
    for (const auto& m : n.members) {
      ProxyRoute r;
      r.name = m.key.scalar;
      Section(m.value, "a route", [&](const std::string& key, const DocNode& v) {
        if (key == "upstream") return String(v, r.upstream);
        if (key == "tool") return String(v, r.tool);
        if (key == "prefix") return String(v, r.prefix);
        if (key == "redact_response") return Bool(v, r.redact_response);
        if (key == "cost_header") return String(v, r.cost_header);
        if (key == "cost_json") return String(v, r.cost_json);
        if (key == "tunnel") return Bool(v, r.tunnel);
        if (key == "mcp") return Bool(v, r.mcp);
        if (key == "redact_results") return Bool(v, r.redact_results);
        if (key == "credential") {
          Section(v, "a credential", [&](const std::string& ck, const DocNode& cv) {
            if (ck == "header") return String(cv, r.credential_header);
            if (ck == "query") return String(cv, r.credential_query);
            if (ck == "format") return String(cv, r.credential_format);
            if (ck == "secret_env") return String(cv, r.secret_env);
            if (ck == "secret_file") return String(cv, r.secret_file);
            return false;
          });
          return true;
        }
        return false;
      });
      if (r.upstream.empty()) Error(m.key, "missing-key", "route " + r.name + " needs an upstream");
      if (r.tool.empty()) r.tool = r.name;
      if (r.prefix.empty()) r.prefix = "/" + r.name;
      c_.proxy.routes.push_back(std::move(r));
    }
    return true;
  }

  // audit.sinks: {NAME: {kind: file|stdout|syslog|webhook, ...}} (docs/audit-sinks.md)
  bool Sinks(const DocNode& n) {
    if (!n.is_map()) {
      Error(n, "wrong-type", "sinks must be a map of names");
      return true;
    }
    for (const auto& m : n.members) {
      audit::SinkOptions so;
      so.name = m.key.scalar;
      std::string kind, protocol = "udp";
      bool has_kind = false;
      Section(m.value, "sink " + so.name, [&](const std::string& key, const DocNode& v) {
        if (key == "kind") {
          has_kind = true;
          if (v.is_scalar() && (v.scalar == "file" || v.scalar == "stdout" ||
                                v.scalar == "syslog" || v.scalar == "webhook")) {
            kind = v.scalar;
          } else {
            Error(v, "wrong-value",
                  "sink " + so.name + ": kind must be file, stdout, syslog or webhook");
          }
          return true;
        }
        if (key == "path") return String(v, so.path);
        if (key == "address") return String(v, so.address);
        if (key == "protocol") return OneOf(v, protocol, {"udp", "tcp"});
        if (key == "facility") {
          int64_t f;
          if (Integer(v, f, 0, 23)) so.facility = static_cast<int>(f);
          return true;
        }
        if (key == "app_name") return String(v, so.app_name);
        if (key == "hostname") return String(v, so.hostname);
        if (key == "max_datagram_bytes") return Size(v, so.max_datagram_bytes, 480, 65507);
        if (key == "url") return String(v, so.url);
        if (key == "headers") return Headers(v, so.headers);
        if (key == "ca_file") return String(v, so.ca_file);
        if (key == "buffer_records") return Size(v, so.buffer_records, 1, 10'000'000);
        if (key == "batch_records") return Size(v, so.batch_records, 1, 100'000);
        if (key == "batch_interval_ms") return Millis(v, so.batch_interval);
        if (key == "timeout_ms") return Millis(v, so.timeout);
        if (key == "max_attempts") {
          int64_t a;
          if (Integer(v, a, 1, 100)) so.max_attempts = static_cast<int>(a);
          return true;
        }
        return false;
      });
      if (!has_kind) Error(m.key, "missing-key", "sink " + so.name + " needs a kind");
      if (kind.empty()) continue;
      so.kind = kind == "file"     ? audit::SinkKind::kFile
                : kind == "stdout" ? audit::SinkKind::kStdout
                : kind == "syslog" ? audit::SinkKind::kSyslog
                                   : audit::SinkKind::kWebhook;
      so.tcp = protocol == "tcp";
      if (common::Status st = audit::ValidateSinkOptions(so); !st.ok()) {
        Error(m.key, "wrong-value", st.message());
      }
      c_.audit_sinks.push_back(std::move(so));
    }
    return true;
  }

  // headers: {Name: value, ...}, in order (notifiers, webhook sinks).
  bool Headers(const DocNode& n, std::vector<std::pair<std::string, std::string>>& out) {
    if (!n.is_map()) {
      Error(n, "wrong-type", "headers must be a map");
      return true;
    }
    for (const auto& h : n.members) {
      std::string value;
      String(h.value, value);
      out.emplace_back(h.key.scalar, value);
    }
    return true;
  }

  bool OneOf(const DocNode& n, std::string& out, std::initializer_list<std::string_view> allowed) {
    std::string v;
    String(n, v);
    for (std::string_view a : allowed) {
      if (v == a) {
        out = v;
        return true;
      }
    }
    std::string list;
    for (std::string_view a : allowed) list += StrCat(list.empty() ? "" : " or ", a);
    Error(n, "wrong-value", StrCat("expected ", list));
    return true;
  }

  bool Integer(const DocNode& n, int64_t& out, int64_t lo, int64_t hi) {
    common::Json j;
    policy::Diagnostics scratch;
    if (!n.is_scalar() || n.quoted || !policy::ToJson(n, j, scratch) || !j.is_int() ||
        j.as_int() < lo || j.as_int() > hi) {
      Error(n, "wrong-value", StrCat("expected an integer from ", lo, " to ", hi));
      return false;
    }
    out = j.as_int();
    return true;
  }

  bool Size(const DocNode& n, size_t& out, int64_t lo, int64_t hi) {
    int64_t v;
    if (Integer(n, v, lo, hi)) out = static_cast<size_t>(v);
    return true;
  }

  bool Millis(const DocNode& n, std::chrono::milliseconds& out) {
    int64_t v;
    if (Integer(n, v, 0, 86'400'000)) out = std::chrono::milliseconds(v);
    return true;
  }

  bool Bool(const DocNode& n, bool& out) {
    if (!n.is_scalar() || n.quoted || (n.scalar != "true" && n.scalar != "false")) {
      Error(n, "wrong-type", "expected true or false");
      return true;
    }
    out = n.scalar == "true";
    return true;
  }

  Config& c_;
  policy::Diagnostics& d_;
};

}  // namespace

common::Status LoadConfigFile(const std::string& path, Config& config) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return common::NotFoundError(StrCat("cannot read configuration file ", path));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  policy::Diagnostics diags;
  DocNode root;
  if (policy::ParseDocument(path, text, {}, root, diags)) {
    ConfigReader(config, diags).Read(root);
  }
  if (!diags.has_errors()) return common::OkStatus();
  std::string errors;
  for (const auto& d : diags.Sorted()) {
    if (!errors.empty()) errors.push_back('\n');
    errors += d.ToString();
  }
  return common::InvalidArgumentError(errors);
}

void ApplyEnvironment(const std::map<std::string, std::string>& env, Config& config) {
  auto apply = [&](const char* name, std::string& field) {
    auto it = env.find(name);
    if (it != env.end() && !it->second.empty()) field = it->second;
  };
  apply("AEGIS_BUNDLE", config.bundle);
  apply("AEGIS_DATA_DIR", config.data_dir);
  apply("AEGIS_LOG_LEVEL", config.log_level);
  apply("AEGIS_HTTP_LISTEN", config.http_listen);
  apply("AEGIS_GRPC_LISTEN", config.grpc_listen);
  apply("AEGIS_PROXY_LISTEN", config.proxy.listen);
  apply("AEGIS_LIMITS_FAIL_MODE", config.limits_fail_mode);
  if (auto it = env.find("AEGIS_REDIS_URL"); it != env.end() && !it->second.empty()) {
    config.redis_url = it->second;
    config.limit_store = "redis";
  }
}

common::StatusOr<std::string> LoadOrCreateSecret(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if ((st.st_mode & 077) != 0) {
      return common::PermissionDeniedError(
          StrCat(path, " is readable by others: chmod 600 ", path));
    }
    std::ifstream in(path, std::ios::binary);
    std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.size() < 32) return common::InvalidArgumentError(StrCat(path, " is too short"));
    return secret;
  }
  unsigned char random[32];
  if (RAND_bytes(random, sizeof random) != 1) return common::InternalError("no randomness");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string secret;
  for (unsigned char b : random) {
    secret += kHex[b >> 4];
    secret += kHex[b & 15];
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return common::InternalError(StrCat("cannot create ", path, ": ", std::strerror(errno)));
  std::string line = secret + "\n";
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) return common::InternalError(StrCat("cannot write ", path));
  return secret;
}

}  // namespace aegis::service
