#include "engine/call_context.h"

#include <cmath>

#include "common/host.h"
#include "expr/time_util.h"
#include "policy/pattern.h"
#include "common/strings.h"

namespace aegis::engine {

using common::InvalidArgumentError;
using common::Json;
using common::StrCat;

namespace {

std::string_view StringField(const Json& obj, std::string_view key) {
  const Json* j = obj.Find(key);
  return j && j->is_string() ? std::string_view(j->as_string()) : std::string_view();
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes (and '+' as space when `plus_is_space`).
common::StatusOr<std::string> PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return InvalidArgumentError("truncated percent-escape");
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return InvalidArgumentError("invalid percent-escape");
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  if (!common::IsValidUtf8(out)) return InvalidArgumentError("percent-escapes decode to invalid UTF-8");
  for (unsigned char c : out) {
    if (c < 0x20 || c == 0x7f) return InvalidArgumentError("control byte in path or query");
  }
  return out;
}

}  // namespace

std::string_view CallContext::method() const { return StringField(request, "method"); }
std::string_view CallContext::host() const { return StringField(request, "host"); }
std::string_view CallContext::path() const { return StringField(request, "path"); }

common::StatusOr<std::string> NormalizePath(std::string_view raw, Json* query) {
  if (raw.empty() || raw[0] != '/') return InvalidArgumentError("path must start with '/'");
  if (raw.size() > 8192) return InvalidArgumentError("path longer than 8192 bytes");
  size_t q = raw.find('?');
  std::string_view path_part = raw.substr(0, q);
  if (path_part.find('#') != std::string_view::npos) {
    return InvalidArgumentError("path contains a fragment");
  }
  std::string path;
  for (size_t i = 0; i < path_part.size(); ++i) {
    char c = path_part[i];
    if (c == '\\') return InvalidArgumentError("path contains a backslash");
    if (c == '%') {
      if (i + 2 >= path_part.size()) {
        return InvalidArgumentError("truncated percent-escape in path");
      }
      int hi = HexValue(path_part[i + 1]);
      int lo = HexValue(path_part[i + 2]);
      if (hi < 0 || lo < 0) return InvalidArgumentError("invalid percent-escape in path");
      char d = static_cast<char>(hi * 16 + lo);
      if (d == '/' || d == '\\' || d == '\0') {
        return InvalidArgumentError("path contains an encoded '/', '\\' or NUL");
      }
      path.push_back(d);
      i += 2;
      continue;
    }
    path.push_back(c);
  }
  if (!common::IsValidUtf8(path)) return InvalidArgumentError("path is not valid UTF-8");
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    std::string_view seg = std::string_view(path).substr(
        pos, end == std::string::npos ? std::string::npos : end - pos);
    if (seg == "." || seg == "..") return InvalidArgumentError("path contains a dot segment");
    if (seg.empty() && end != std::string::npos) {
      return InvalidArgumentError("path contains an empty segment ('//')");
    }
    for (unsigned char c : seg) {
      if (c < 0x20 || c == 0x7f) return InvalidArgumentError("path contains a control byte");
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  if (query) {
    *query = Json::EmptyObject();
    if (q != std::string_view::npos) {
      std::string_view qs = raw.substr(q + 1);
      size_t start = 0;
      while (start <= qs.size()) {
        size_t amp = qs.find('&', start);
        std::string_view pair = qs.substr(start, amp == std::string_view::npos ? amp : amp - start);
        if (!pair.empty()) {
          size_t eq = pair.find('=');
          auto key = PercentDecode(pair.substr(0, eq), true);
          if (!key.ok()) return key.status();
          auto value = PercentDecode(
              eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
          if (!value.ok()) return value.status();
          if (query->Find(*key)) {
            return InvalidArgumentError(StrCat("query parameter \"", *key, "\" is given twice"));
          }
          query->Set(*key, Json::String(*value));
        }
        if (amp == std::string_view::npos) break;
        start = amp + 1;
      }
    }
  }
  return path;
}

common::StatusOr<CallContext> CallFromJson(Json json, int64_t now_unix_nanos,
                                           const CallParseOptions& options) {
  if (!json.is_object()) return InvalidArgumentError("call must be a JSON object");
  CallContext call;
  call.now_unix_nanos = now_unix_nanos;
  // `json` is ours: large members (params, identity) are moved out rather than copied.
  for (auto& member : json.mutable_object()) {
    const std::string& key = member.key;
    Json& value = member.value;
    auto need_name = [&](std::string& out) -> common::Status {
      if (!value.is_string() || !policy::IsValidName(value.as_string())) {
        return InvalidArgumentError(
            StrCat(key, " must be a string of 1-128 letters, digits and _ - . : /"));
      }
      out = value.as_string();
      return common::OkStatus();
    };
    common::Status st;
    if (key == "tenant") {
      st = need_name(call.tenant);
    } else if (key == "agent") {
      st = need_name(call.agent);
    } else if (key == "tool") {
      st = need_name(call.tool);
    } else if (key == "action") {
      st = need_name(call.action);
    } else if (key == "params") {
      if (!value.is_object()) return InvalidArgumentError("params must be an object");
      call.params = std::move(value);
    } else if (key == "override_token") {
      if (!value.is_string() || value.as_string().empty() || value.as_string().size() > 8192) {
        return InvalidArgumentError("override_token must be a token string of at most 8 KiB");
      }
      call.override_token = value.as_string();
    } else if (key == "identity") {
      if (!options.trusted) {
        return InvalidArgumentError(
            "identity cannot be given in a call; it comes from the verified agent token");
      }
      if (!value.is_object()) return InvalidArgumentError("identity must be an object");
      call.identity = std::move(value);
    } else if (key == "now") {
      if (!options.trusted) {
        return InvalidArgumentError("now cannot be given in a call; the gateway's clock sets it");
      }
      if (!value.is_string() ||
          !expr::internal::ParseTimestamp(value.as_string(), &call.now_unix_nanos)) {
        return InvalidArgumentError("now must be an RFC 3339 time such as 2026-05-01T09:30:00Z");
      }
    } else if (key == "cost_usd") {
      if (!value.is_number()) return InvalidArgumentError("cost_usd must be a number");
      double d = value.as_double();
      if (!std::isfinite(d) || d < 0 || d > 1e9) {
        return InvalidArgumentError("cost_usd must be between 0 and 1000000000");
      }
      call.cost = static_cast<policy::Micros>(std::llround(d * 1e6));
    } else if (key == "request") {
      if (!value.is_object()) return InvalidArgumentError("request must be an object");
      Json request = Json::EmptyObject();
      // `value` is ours too: headers and query are moved, not copied.
      for (auto& [rk, rv] : value.mutable_object()) {
        if (rk == "method") {
          if (!rv.is_string() || rv.as_string().empty() || rv.as_string().size() > 16) {
            return InvalidArgumentError("request.method must be an HTTP method");
          }
          std::string m = rv.as_string();
          for (char& c : m) {
            if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
            if (c < 'A' || c > 'Z') return InvalidArgumentError("request.method must be letters");
          }
          request.Set("method", Json::String(m));
        } else if (rk == "host") {
          if (!rv.is_string()) return InvalidArgumentError("request.host must be a string");
          auto host = common::NormalizeHost(rv.as_string());
          if (!host.ok()) {
            return InvalidArgumentError(StrCat("request.host: ", host.status().message()));
          }
          request.Set("host", Json::String(*host));
        } else if (rk == "path") {
          if (!rv.is_string()) return InvalidArgumentError("request.path must be a string");
          Json query;
          auto path = NormalizePath(rv.as_string(), &query);
          if (!path.ok()) {
            return InvalidArgumentError(StrCat("request.path: ", path.status().message()));
          }
          request.Set("path", Json::String(*path));
          if (!query.as_object().empty()) {
            if (value.Find("query")) {
              return InvalidArgumentError(
                  "request.query and a query string in request.path cannot both be given");
            }
            request.Set("query", std::move(query));
          }
        } else if (rk == "headers") {
          if (!rv.is_object()) return InvalidArgumentError("request.headers must be an object");
          Json headers = Json::EmptyObject();
          for (auto& [hk, hv] : rv.mutable_object()) {
            if (!hv.is_string()) {
              return InvalidArgumentError("request.headers values must be strings");
            }
            std::string lower = hk;
            for (char& c : lower) {
              if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
            }
            if (headers.Find(lower)) {
              return InvalidArgumentError(StrCat("header \"", lower, "\" is given twice"));
            }
            headers.Set(std::move(lower), std::move(hv));
          }
          request.Set("headers", std::move(headers));
        } else if (rk == "query") {
          if (!rv.is_object()) return InvalidArgumentError("request.query must be an object");
          for (const auto& [qk, qv] : rv.as_object()) {
            if (!qv.is_string()) return InvalidArgumentError("request.query values must be strings");
          }
          request.Set("query", std::move(rv));
        } else {
          return InvalidArgumentError(StrCat("unknown field request.", rk));
        }
      }
      call.request = std::move(request);
    } else {
      return InvalidArgumentError(StrCat("unknown field \"", key, "\""));
    }
    if (!st.ok()) return st;
  }
  if (call.agent.empty() && !options.agent_from_token) {
    return InvalidArgumentError("agent is required");
  }
  if (call.tool.empty() && call.host().empty()) {
    return InvalidArgumentError("give tool (and action), or request with host, method and path");
  }
  return call;
}

common::StatusOr<CallContext> ParseCall(std::string_view json, int64_t now_unix_nanos,
                                        const CallParseOptions& options) {
  auto parsed = common::ParseJson(json, options.json);
  if (!parsed.ok()) return parsed.status();
  return CallFromJson(*std::move(parsed), now_unix_nanos, options);
}

}  // namespace aegis::engine
