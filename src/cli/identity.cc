#include "cli/identity.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>

#include "common/digest.h"
#include "common/json.h"
#include "common/strings.h"
#include "identity/keyring.h"
#include "net/http_client.h"
#include "service/config.h"
#include "service/identity.h"

namespace aegis::cli {

namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// --name value pairs, and the positional arguments.
struct Args {
  std::map<std::string, std::string> flags;
  std::vector<std::string> positional;
  std::string error;
};

Args ParseArgs(const std::vector<std::string>& args, const std::vector<std::string>& with_value,
               const std::vector<std::string>& switches) {
  Args out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) {
      out.positional.push_back(a);
    } else if (std::find(with_value.begin(), with_value.end(), a) != with_value.end()) {
      if (i + 1 >= args.size()) {
        out.error = a + " needs a value";
        return out;
      }
      out.flags[a] = args[++i];
    } else if (std::find(switches.begin(), switches.end(), a) != switches.end()) {
      out.flags[a] = "";
    } else {
      out.error = "unknown argument " + a;
      return out;
    }
  }
  return out;
}

// The configuration `aegis serve` would use: --config, else AEGIS_CONFIG, over the defaults,
// with --data-dir on top.
std::optional<service::Config> LoadConfig(const Args& a) {
  service::Config config;
  std::string path = a.flags.count("--config") ? a.flags.at("--config") : "";
  if (path.empty() && std::getenv("AEGIS_CONFIG")) path = std::getenv("AEGIS_CONFIG");
  if (!path.empty()) {
    common::Status st = service::LoadConfigFile(path, config);
    if (!st.ok()) {
      std::cerr << st.message() << "\naegis: token: the configuration has errors\n";
      return std::nullopt;
    }
  }
  if (const char* d = std::getenv("AEGIS_DATA_DIR"); d && *d) config.data_dir = d;
  if (a.flags.count("--data-dir")) config.data_dir = a.flags.at("--data-dir");
  return config;
}

}  // namespace

int Token(const std::vector<std::string>& args) {
  static constexpr const char* kUsageText =
      "usage: aegis token issue --agent A [--tenant T] [--ttl SECONDS] [--data-dir D] [--config F]\n"
      "       aegis token rotate [--data-dir D] [--config F]\n"
      "       aegis token jwks [--data-dir D] [--config F]\n"
      "       aegis token hash            (reads a credential secret on stdin; prints its SHA-256)\n";
  Args a = ParseArgs(args, {"--agent", "--tenant", "--ttl", "--data-dir", "--config"}, {});
  if (!a.error.empty() || a.positional.size() != 1) {
    std::cerr << "aegis: token: " << (a.error.empty() ? "one subcommand" : a.error) << "\n"
              << kUsageText;
    return kUsage;
  }
  const std::string& sub = a.positional[0];
  if (sub == "hash") {
    std::string secret((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.size() < 16) {
      std::cerr << "aegis: token hash: a credential secret needs at least 16 characters\n";
      return kFailed;
    }
    std::cout << common::Sha256Hex(secret) << "\n";
    return kOk;
  }
  auto config = LoadConfig(a);
  if (!config) return kFailed;
  auto keyring = identity::Keyring::Open(config->data_dir + "/keys", NowSeconds());
  if (!keyring.ok()) {
    std::cerr << "aegis: token: " << keyring.status().message() << "\n";
    return kFailed;
  }
  if (sub == "rotate") {
    int64_t now = NowSeconds();
    auto kid = (*keyring)->Rotate(now);
    if (!kid.ok()) {
      std::cerr << "aegis: token rotate: " << kid.status().message() << "\n";
      return kFailed;
    }
    // Keys retired longer ago than any token lives verify nothing any more.
    const auto& o = config->identity;
    int64_t longest = std::max(o.max_ttl_seconds, o.override_ttl_seconds) + o.leeway_seconds;
    if (common::Status st = (*keyring)->Prune(now - longest); !st.ok()) {
      std::cerr << "aegis: token rotate: pruning old keys: " << st.message() << "\n";
    }
    std::cout << "new signing key " << *kid
              << "; older keys keep verifying (a running server picks it up on SIGHUP)\n";
    return kOk;
  }
  if (sub == "jwks") {
    std::cout << (*keyring)->JwksJson() << "\n";
    return kOk;
  }
  if (sub != "issue") {
    std::cerr << "aegis: token: unknown subcommand " << sub << "\n" << kUsageText;
    return kUsage;
  }
  if (!a.flags.count("--agent")) {
    std::cerr << "aegis: token issue: --agent is required\n" << kUsageText;
    return kUsage;
  }
  int64_t ttl = config->identity.default_ttl_seconds;
  if (a.flags.count("--ttl")) {
    char* end = nullptr;
    ttl = std::strtoll(a.flags.at("--ttl").c_str(), &end, 10);
    if (!end || *end) {
      std::cerr << "aegis: token issue: --ttl is a number of seconds\n";
      return kUsage;
    }
  }
  service::Identity id(std::move(*keyring), config->identity, nullptr,
                       [](std::string_view, const std::string&) {});
  std::string tenant = a.flags.count("--tenant") ? a.flags.at("--tenant") : "";
  identity::Claims issued;
  auto token = id.IssueAgentToken(a.flags.at("--agent"), tenant, ttl, NowSeconds(), &issued);
  if (!token.ok()) {
    std::cerr << "aegis: token issue: " << token.status().message() << "\n";
    return kFailed;
  }
  std::cout << *token << "\n";
  return kOk;
}

int Approvals(const std::vector<std::string>& args) {
  static constexpr const char* kUsageText =
      "usage: aegis approvals list [--state pending|approved|denied|expired] [--tenant T] [--agent A]\n"
      "       aegis approvals show ID\n"
      "       aegis approvals approve ID [--comment TEXT]\n"
      "       aegis approvals deny ID [--comment TEXT]\n"
      "   with [--server HOST:PORT] (127.0.0.1:8181) [--json]; the approver's credential comes\n"
      "   from AEGIS_CREDENTIAL\n";
  Args a = ParseArgs(args, {"--server", "--state", "--tenant", "--agent", "--comment"}, {"--json"});
  if (!a.error.empty() || a.positional.empty()) {
    std::cerr << "aegis: approvals: " << (a.error.empty() ? "a subcommand is needed" : a.error)
              << "\n" << kUsageText;
    return kUsage;
  }
  const std::string& sub = a.positional[0];
  std::string server = a.flags.count("--server") ? a.flags.at("--server") : "127.0.0.1:8181";
  const char* credential = std::getenv("AEGIS_CREDENTIAL");
  if (!credential || !*credential) {
    std::cerr << "aegis: approvals: set AEGIS_CREDENTIAL to an approver's credential secret\n";
    return kUsage;
  }
  auto safe = [](const std::string& v) {
    return !v.empty() && v.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789_-.:/") == std::string::npos;
  };
  net::FetchRequest req;
  req.headers.emplace_back("Authorization", common::StrCat("Bearer ", credential));
  if (sub == "list" && a.positional.size() == 1) {
    std::string query;
    for (const char* f : {"--state", "--tenant", "--agent"}) {
      if (!a.flags.count(f)) continue;
      if (!safe(a.flags.at(f))) {
        std::cerr << "aegis: approvals: " << f << " may hold letters, digits and _ - . : / only\n";
        return kUsage;
      }
      query += common::StrCat(query.empty() ? "?" : "&", f + 2, "=", a.flags.at(f));
    }
    req.method = "GET";
    req.url = common::StrCat("http://", server, "/v1/approvals", query);
  } else if ((sub == "show" || sub == "approve" || sub == "deny") && a.positional.size() == 2 &&
             safe(a.positional[1])) {
    req.url = common::StrCat("http://", server, "/v1/approvals/", a.positional[1]);
    if (sub == "show") {
      req.method = "GET";
    } else {
      req.method = "POST";
      req.url += "/" + sub;
      if (a.flags.count("--comment")) {
        req.headers.emplace_back("Content-Type", "application/json");
        req.body = "{\"comment\":";
        common::AppendJsonString(req.body, a.flags.at("--comment"));
        req.body += "}";
      }
    }
  } else {
    std::cerr << "aegis: approvals: bad arguments\n" << kUsageText;
    return kUsage;
  }
  auto res = net::Fetch(req);
  if (!res.ok()) {
    std::cerr << "aegis: approvals: cannot reach " << server << ": " << res.status().message()
              << "\n";
    return kFailed;
  }
  if (res->status != 200) {
    std::cerr << "aegis: approvals: " << server << " answered " << res->status << ": " << res->body
              << "\n";
    return kFailed;
  }
  if (a.flags.count("--json")) {
    std::cout << res->body << "\n";
    return kOk;
  }
  auto body = common::ParseJson(res->body);
  if (!body.ok()) {
    std::cerr << "aegis: approvals: unexpected answer from " << server << "\n";
    return kFailed;
  }
  auto text = [](const common::Json& o, const char* k) {
    const common::Json* v = o.Find(k);
    if (!v) return std::string();
    return v->is_string() ? v->as_string() : v->Canonical();
  };
  auto line = [&](const common::Json& ap) {
    std::printf("%-36s %-9s %-20s %-16s %-16s %s/%s  %s\n", text(ap, "id").c_str(),
                text(ap, "state").c_str(), text(ap, "agent").c_str(), text(ap, "tool").c_str(),
                text(ap, "action").c_str(), text(ap, "approvals").c_str(),
                text(ap, "quorum").c_str(), text(ap, "expires_at").c_str());
  };
  if (sub == "list") {
    const common::Json* list = body->Find("approvals");
    if (!list || !list->is_array()) return kFailed;
    std::printf("%-36s %-9s %-20s %-16s %-16s %s  %s\n", "approval", "state", "agent", "tool",
                "action", "votes", "expires");
    for (const auto& ap : list->as_array()) line(ap);
    return kOk;
  }
  line(*body);
  std::cout << "rule: " << text(*body, "rule") << "  " << text(*body, "message") << "\n"
            << "call: " << text(*body, "summary") << "\n";
  return kOk;
}

}  // namespace aegis::cli
