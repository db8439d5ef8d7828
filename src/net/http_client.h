// Fetch: a small HTTP/1.1 client for outgoing calls the gateway makes on its own behalf
// (approval notifications to Slack, Teams and webhooks).
//
// One request per call, on a new connection, with one deadline for the whole exchange (name
// resolution, connect, TLS handshake, request, response). https verifies the certificate chain
// against the system's CAs (or a given CA file) and the host name, sends SNI, and refuses
// anything older than TLS 1.2. Redirects are not followed: a 3xx comes back as a response.
//
// URLs are parsed strictly (see ParseUrl), and error messages name the scheme, host and port
// only, never the path or query: webhook URLs carry their secret in the path.
//
// Fetch blocks the calling thread; it is thread-safe (nothing is shared between calls).
#ifndef AEGIS_NET_HTTP_CLIENT_H_
#define AEGIS_NET_HTTP_CLIENT_H_

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace aegis::net {

struct FetchRequest {
  std::string method = "POST";
  std::string url;  // http:// or https://, no userinfo
  // Sent as given, after Host and User-Agent. Host, Content-Length, Transfer-Encoding and
  // Connection are set by Fetch and refused here.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds timeout{5000};  // whole exchange
  std::string ca_file;                      // PEM; empty: the system's CAs
};

struct FetchResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order
  std::string body;

  // The value of the first header called `name` (case-insensitive), or nullptr.
  const std::string* Header(std::string_view name) const;
};

// Largest response body Fetch accepts.
inline constexpr size_t kMaxFetchBodyBytes = 1 << 20;

// One request on a new connection; see the file comment. Returns the response whatever its
// status, or:
//   InvalidArgument    a bad URL, method, header, or an unreadable ca_file;
//   Unavailable        name resolution, connect, TLS (handshake or verification), sending or
//                      receiving failed, or the timeout passed; the message says which;
//   ResourceExhausted  the response body is larger than kMaxFetchBodyBytes.
common::StatusOr<FetchResponse> Fetch(const FetchRequest& request);

// A URL as Fetch understands it.
struct Url {
  bool tls = false;         // https
  std::string host;         // lower case; an IPv6 literal without its brackets
  bool host_is_ip = false;  // IPv4 or IPv6 literal: no SNI, verified against IP SANs
  int port = 0;             // as given, or 80 / 443
  bool explicit_port = false;
  std::string target;  // path and query, starting with '/'

  // "https://host[:port]": safe to log, unlike the path and query.
  std::string Origin() const;
  // The Host header: host (bracketed if IPv6), with ":port" when one was given.
  std::string HostHeader() const;
};

// Parses an absolute http(s) URL: scheme (either case), host name, IPv4 dotted quad or
// [IPv6], optional port 1-65535, then an optional path and query. Refuses userinfo, fragments,
// spaces, control and non-ASCII bytes, backslashes, percent signs not followed by two hex
// digits, and characters RFC 3986 does not allow in a path or query. Returns InvalidArgument
// with the reason; the message never quotes the path or query.
common::StatusOr<Url> ParseUrl(std::string_view url);

// Returns OK if `name` is an HTTP token and `value` holds no control characters other than
// tab (so no CR or LF); InvalidArgument otherwise. Also refuses the headers Fetch sets itself.
common::Status CheckHeader(std::string_view name, std::string_view value);

}  // namespace aegis::net

#endif  // AEGIS_NET_HTTP_CLIENT_H_
