#include "frontdoors/proxy/request_target.h"

#include "common/host.h"
#include "common/strings.h"

namespace aegis::proxy {

namespace {

using common::InvalidArgumentError;
using common::Status;
using common::StatusOr;
using common::StrCat;

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 9110 token.
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsAlnum(c) && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// RFC 3986 pchar, less '%' (checked with its two hex digits apart), plus '/' and '?': what a
// path and a query may hold.
bool IsPathOrQueryChar(char c) {
  return IsAlnum(c) || std::string_view("-._~!$&'()*+,;=:@/?").find(c) != std::string_view::npos;
}

// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
bool IsScheme(std::string_view s) {
  if (s.empty() || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// "host:port" with nothing a URI would add: what a client sends for CONNECT, and what we tell it
// it may not send for any other method.
bool LooksLikeAuthorityForm(std::string_view target) {
  size_t colon = target.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == target.size()) return false;
  if (target.find_first_of("/?") != std::string_view::npos) return false;
  for (char c : target.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Userinfo in an authority, literal or percent-encoded; percent-encoding is refused in hosts
// anyway, but "%40" deserves the more telling reason.
bool HasUserinfo(std::string_view authority) {
  if (authority.find('@') != std::string_view::npos) return true;
  for (size_t i = 0; i + 2 < authority.size(); ++i) {
    if (authority[i] == '%' && authority[i + 1] == '4' && authority[i + 2] == '0') return true;
  }
  return false;
}

// `s` is the path and query of an origin-form or absolute-form target, bytes already checked.
Status CheckPathAndQuery(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !IsHex(s[i + 1]) || !IsHex(s[i + 2])) {
        return InvalidArgumentError("request-target has a '%' not followed by two hex digits");
      }
      i += 2;
    } else if (!IsPathOrQueryChar(c)) {
      return InvalidArgumentError(
          StrCat("request-target path or query contains '", c, "', which RFC 3986 does not allow"));
    }
  }
  return common::OkStatus();
}

// Fills path, query and has_query from a checked "/path?query" (or "" or "?query", which an
// absolute-form target may have: the path is then "/").
void SplitPathAndQuery(std::string_view s, RequestTarget& out) {
  size_t q = s.find('?');
  std::string_view path = s.substr(0, q);
  out.path = std::string(path.empty() ? std::string_view("/") : path);
  if (q != std::string_view::npos) {
    out.has_query = true;
    out.query = std::string(s.substr(q + 1));
  }
}

StatusOr<std::string> TargetHost(std::string_view authority, int* port) {
  if (authority.empty()) return InvalidArgumentError("request-target has an empty host");
  if (HasUserinfo(authority)) {
    return InvalidArgumentError("request-target has userinfo ('@' or %40) in its authority");
  }
  auto host = common::NormalizeHost(authority, port);
  if (!host.ok()) return InvalidArgumentError(StrCat("request-target: ", host.status().message()));
  return host;
}

}  // namespace

StatusOr<RequestTarget> ParseRequestTarget(std::string_view method, std::string_view target,
                                           const std::vector<std::string_view>& host_headers) {
  if (!IsToken(method)) return InvalidArgumentError("method is not an HTTP token");
  // RFC 9112 section 3.2: a request without Host, or with several, is answered 400.
  if (host_headers.empty()) return InvalidArgumentError("request has no Host header");
  if (host_headers.size() > 1) return InvalidArgumentError("request has more than one Host header");
  if (host_headers[0].empty()) return InvalidArgumentError("Host header is empty");

  if (target.empty()) return InvalidArgumentError("request-target is empty");
  if (target.size() > kMaxRequestTargetBytes) {
    return InvalidArgumentError(
        StrCat("request-target is longer than ", kMaxRequestTargetBytes, " bytes"));
  }
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f) {
      return InvalidArgumentError(
          "request-target contains a control byte, space, DEL or non-ASCII byte");
    }
    if (c == '\\') return InvalidArgumentError("request-target contains a backslash");
    if (c == '#') return InvalidArgumentError("request-target contains a fragment ('#')");
  }

  RequestTarget out;
  const bool connect = method == "CONNECT";
  if (target == "*") {
    return InvalidArgumentError("asterisk-form request-target ('*') is not proxied");
  }
  if (connect) {
    if (target.find_first_of("/?") != std::string_view::npos) {
      return InvalidArgumentError("CONNECT needs an authority-form request-target (host:port)");
    }
    int port = 0;
    auto host = TargetHost(target, &port);
    if (!host.ok()) return host.status();
    if (port == 0) return InvalidArgumentError("CONNECT request-target needs a port (host:port)");
    out.form = RequestTarget::Form::kAuthority;
    out.host = *std::move(host);
    out.port = port;
    out.explicit_port = true;
  } else if (target[0] == '/') {
    // "//host/path" is a network-path reference: some servers and libraries read a host in it.
    if (target.size() > 1 && target[1] == '/') {
      return InvalidArgumentError("origin-form request-target must not start with '//'");
    }
    if (Status s = CheckPathAndQuery(target); !s.ok()) return s;
    out.form = RequestTarget::Form::kOrigin;
    SplitPathAndQuery(target, out);
  } else {
    if (LooksLikeAuthorityForm(target)) {
      return InvalidArgumentError("authority-form request-target (host:port) is only for CONNECT");
    }
    size_t colon = target.find(':');
    std::string_view scheme =
        colon == std::string_view::npos ? std::string_view() : target.substr(0, colon);
    if (!IsScheme(scheme)) {
      return InvalidArgumentError(
          "request-target must be origin-form (\"/path\") or an absolute http(s) URI");
    }
    const bool https = EqualsIgnoreCase(scheme, "https");
    if (!https && !EqualsIgnoreCase(scheme, "http")) {
      return InvalidArgumentError("request-target scheme must be http or https");
    }
    if (target.substr(colon + 1, 2) != "//") {
      return InvalidArgumentError("absolute-form request-target needs \"//\" after the scheme");
    }
    std::string_view rest = target.substr(colon + 3);
    size_t end = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, end);
    std::string_view path_and_query =
        end == std::string_view::npos ? std::string_view() : rest.substr(end);
    int port = 0;
    auto host = TargetHost(authority, &port);
    if (!host.ok()) return host.status();
    if (Status s = CheckPathAndQuery(path_and_query); !s.ok()) return s;
    out.form = RequestTarget::Form::kAbsolute;
    out.tls = https;
    out.host = *std::move(host);
    out.explicit_port = port != 0;
    out.port = port != 0 ? port : (https ? 443 : 80);
    SplitPathAndQuery(path_and_query, out);
  }

  int host_port = 0;
  auto host = common::NormalizeHost(host_headers[0], &host_port);
  if (!host.ok()) return InvalidArgumentError(StrCat("Host header: ", host.status().message()));
  if (out.form == RequestTarget::Form::kOrigin) {
    out.host = *std::move(host);
    out.explicit_port = host_port != 0;
    out.port = host_port != 0 ? host_port : 80;
    return out;
  }
  // The target's authority is the one used; a Host header that says otherwise is either a
  // confused client or an attempt to make two readers of this request disagree.
  if (*host != out.host) {
    return InvalidArgumentError("Host header names another host than the request-target");
  }
  int effective_port = host_port != 0 ? host_port : (out.tls ? 443 : 80);
  if (effective_port != out.port) {
    return InvalidArgumentError("Host header names another port than the request-target");
  }
  return out;
}

}  // namespace aegis::proxy
