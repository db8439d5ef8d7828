// BuildRoutes: the proxy's configured routes, validated, with their secrets read.
#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include "common/strings.h"
#include "frontdoors/headers.h"
#include "frontdoors/proxy/proxy.h"

namespace aegis::proxy {

using common::StrCat;

namespace {

bool IsPrefixChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == '~' || c == '/';
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

common::StatusOr<std::string> ReadSecretFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return common::InvalidArgumentError(StrCat("cannot read secret_file ", path));
  }
  if ((st.st_mode & 077) != 0) {
    return common::InvalidArgumentError(
        StrCat("secret_file ", path, " is readable by others: chmod 600 ", path));
  }
  std::ifstream in(path, std::ios::binary);
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  return secret;
}

}  // namespace

common::StatusOr<std::vector<Route>> BuildRoutes(
    const std::vector<service::ProxyRoute>& routes,
    const std::function<const char*(const char*)>& getenv) {
  std::vector<Route> out;
  for (const service::ProxyRoute& c : routes) {
    auto fail = [&](std::string_view field, std::string_view why) {
      return common::InvalidArgumentError(StrCat("proxy route ", c.name, ": ", field, " ", why));
    };
    Route r;
    r.name = c.name;
    r.tool = c.tool;
    r.prefix = c.prefix;
    auto url = net::ParseUrl(c.upstream);
    if (!url.ok()) return fail("upstream", url.status().message());
    if (!c.mcp && url->target != "/") {
      return fail("upstream", "must be scheme://host[:port] without a path");
    }
    if (url->target.find('?') != std::string::npos) return fail("upstream", "has a query");
    r.upstream = *url;
    if (r.prefix.size() < 2 || r.prefix[0] != '/' || r.prefix.back() == '/' ||
        r.prefix.find("//") != std::string::npos) {
      return fail("prefix", "must be '/' and a path without a trailing '/', e.g. /stripe");
    }
    for (char ch : r.prefix) {
      if (!IsPrefixChar(ch)) return fail("prefix", "may hold letters, digits, - _ . ~ and /");
    }
    for (const Route& other : out) {
      bool nested = r.prefix == other.prefix ||
                    r.prefix.rfind(other.prefix + "/", 0) == 0 ||
                    other.prefix.rfind(r.prefix + "/", 0) == 0;
      if (nested) return fail("prefix", StrCat("overlaps route ", other.name, "'s ", other.prefix));
    }
    if (!c.credential_header.empty() && !c.credential_query.empty()) {
      return fail("credential", "takes a header or a query parameter, not both");
    }
    bool has_credential = !c.credential_header.empty() || !c.credential_query.empty();
    if (has_credential) {
      if (!c.credential_header.empty()) {
        if (!IsToken(c.credential_header)) return fail("credential.header", "is not a header name");
        r.credential_header = frontdoors::LowerAscii(c.credential_header);
      }
      if (!c.credential_query.empty() && !IsToken(c.credential_query)) {
        return fail("credential.query", "is not a parameter name");
      }
      r.credential_query = c.credential_query;
      if (c.secret_env.empty() == c.secret_file.empty()) {
        return fail("credential", "needs exactly one of secret_env and secret_file");
      }
      std::string secret;
      if (!c.secret_env.empty()) {
        const char* v = getenv(c.secret_env.c_str());
        if (v == nullptr || *v == '\0') {
          return fail("credential.secret_env", StrCat(c.secret_env, " is not set"));
        }
        secret = v;
      } else {
        auto read = ReadSecretFile(c.secret_file);
        if (!read.ok()) return fail("credential.secret_file", read.status().message());
        secret = *read;
      }
      if (secret.empty()) return fail("credential", "the secret is empty");
      size_t at = c.credential_format.find("{secret}");
      if (at == std::string::npos) return fail("credential.format", "must contain {secret}");
      r.credential_value = c.credential_format;
      r.credential_value.replace(at, 8, secret);
      if (!r.credential_header.empty() && !net::CheckHeader(r.credential_header, r.credential_value).ok()) {
        return fail("credential", "the secret holds characters a header cannot carry");
      }
    } else if (!c.secret_env.empty() || !c.secret_file.empty()) {
      return fail("credential", "names a secret but neither a header nor a query parameter");
    }
    r.redact_response = c.redact_response;
    if (!c.cost_header.empty()) {
      if (!IsToken(c.cost_header)) return fail("cost_header", "is not a header name");
      r.cost_header = frontdoors::LowerAscii(c.cost_header);
    }
    if (!c.cost_json.empty()) {
      size_t pos = 0;
      while (pos <= c.cost_json.size()) {
        size_t dot = c.cost_json.find('.', pos);
        std::string part = c.cost_json.substr(pos, dot == std::string::npos ? dot : dot - pos);
        if (part.empty()) return fail("cost_json", "is a dotted path such as usage.cost_usd");
        r.cost_json.push_back(std::move(part));
        if (dot == std::string::npos) break;
        pos = dot + 1;
      }
    }
    if (!c.cost_header.empty() && !c.cost_json.empty()) {
      return fail("cost_header", "and cost_json exclude each other");
    }
    r.tunnel = c.tunnel;
    r.mcp = c.mcp;
    r.redact_results = c.redact_results;
    if (!r.mcp && r.redact_results) return fail("redact_results", "is for MCP routes (mcp: true)");
    if (r.mcp && (r.tunnel || r.redact_response || !r.cost_header.empty() || !r.cost_json.empty())) {
      return fail("mcp", "routes take none of tunnel, redact_response, cost_header, cost_json");
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace aegis::proxy
