// RequestTarget: the first thing the proxy front door does with a request — read its method,
// request-target (RFC 9112 section 3.2) and Host header, and refuse with 400 whatever is hostile
// or ambiguous (DESIGN.md section 7) before any policy decision sees it.
//
// Hosts go through common::NormalizeHost, so they compare equal to policy hosts. The path and
// query are checked for syntax only and kept raw: the proxy forwards them as received, and runs
// engine::NormalizePath on them for the policy decision (that refuses dot segments, encoded
// '/', and the like).
#ifndef AEGIS_FRONTDOORS_PROXY_REQUEST_TARGET_H_
#define AEGIS_FRONTDOORS_PROXY_REQUEST_TARGET_H_

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace aegis::proxy {

// The longest request-target accepted; the same bound as engine::NormalizePath's, so an accepted
// target's path always fits it.
inline constexpr size_t kMaxRequestTargetBytes = 8192;

struct RequestTarget {
  // RFC 9112 section 3.2. Asterisk-form ("OPTIONS *") is refused, never returned.
  enum class Form { kOrigin, kAbsolute, kAuthority };
  Form form = Form::kOrigin;
  // True for absolute-form "https://..."; false for origin-form and authority-form.
  bool tls = false;
  // As common::NormalizeHost returns it: lower case, no trailing dot, no port. An IPv6 literal
  // keeps its brackets and is in RFC 5952 form ("[2001:db8::1]"); strip the brackets to dial.
  // IPv4-mapped IPv6 addresses and other IP encodings never get here (they are refused).
  // For origin-form it comes from the Host header, otherwise from the target.
  std::string host;
  // The explicit port, or 80 (http, origin-form) / 443 (https). Always 1-65535.
  int port = 0;
  bool explicit_port = false;
  // Origin-form and absolute-form: the path as received, starting with '/' ("/" when an
  // absolute-form target has none), without the query. Authority-form: empty.
  std::string path;
  // The query as received, without the '?'; empty when none. has_query tells "/p?" (true)
  // from "/p" (false).
  std::string query;
  bool has_query = false;
};

// Parses an HTTP/1.1 request's method, request-target and the values of its Host header fields
// (every one received, in order, with surrounding whitespace already removed by the HTTP
// parser). Returns the parsed target, or InvalidArgument (answer 400) with a short reason that
// names the rule broken and quotes at most a few bytes of printable input. Refuses:
//   - a method that is not an HTTP token;
//   - no Host header, or more than one; an empty Host value; a Host that, normalised and with
//     default ports applied (80, or 443 for https), names another host or port than the
//     target (absolute-form and authority-form) — so CONNECT needs "Host: h:port" too;
//   - CONNECT with anything but authority-form "host:port" (port required), and authority-form
//     with any other method; asterisk-form "*"; an absolute-form scheme other than http or https
//     (any case) or without "//"; an origin-form target that does not start with '/', or starts
//     with "//" (a network-path reference some servers read as a host);
//   - NUL, control bytes, spaces, DEL, non-ASCII bytes, backslashes and '#' anywhere in the
//     target; targets over kMaxRequestTargetBytes;
//   - userinfo ('@' or "%40" in the authority), an empty host, and everything NormalizeHost
//     refuses (percent-encoding and zone ids, bad ports, IP literals in odd encodings,
//     IPv4-mapped IPv6, IDNA look-alikes, overlong names and labels);
//   - '%' not followed by two hex digits, and characters RFC 3986 does not allow, in the path or
//     query.
// Thread-safe; keeps no reference to its arguments.
common::StatusOr<RequestTarget> ParseRequestTarget(
    std::string_view method, std::string_view target,
    const std::vector<std::string_view>& host_headers);

}  // namespace aegis::proxy

#endif  // AEGIS_FRONTDOORS_PROXY_REQUEST_TARGET_H_
