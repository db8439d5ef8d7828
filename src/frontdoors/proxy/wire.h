// Wire: the HTTP/1.1 heads the proxy sends, written by hand.
//
// Beast parses what arrives; what leaves is written here into one string, so that a head and the
// first piece of its body go out in one send. Beast's serializer would walk a chain of buffer
// views per field (a tenth of the proxy's user time in profiles), and editing a parsed message
// into the one to send allocates a node per header set or erased.
//
// Field names and values come from Beast's parser, which has checked them (tokens; no CR, LF or
// NUL); the strings the caller adds (target, host, credential, traceparent) must be checked by the
// caller the same way.
#ifndef AEGIS_FRONTDOORS_PROXY_WIRE_H_
#define AEGIS_FRONTDOORS_PROXY_WIRE_H_

#include <boost/beast/http/message.hpp>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace aegis::proxy {

// How a message's body is delimited.
struct Framing {
  enum Kind { kNone, kLength, kChunked };
  Kind kind = kNone;
  uint64_t length = 0;  // kLength

  static Framing None() { return {}; }
  static Framing Length(uint64_t n) { return {kLength, n}; }
  static Framing Chunked() { return {kChunked, 0}; }
};

// What the proxy puts in the upstream's request head beside the agent's fields.
struct UpstreamHead {
  std::string_view target;               // origin-form, with the query
  std::string_view host;                 // the Host field
  std::string_view credential_header{};  // the route's credential; empty when none
  std::string_view credential_value{};
  std::string_view traceparent{};  // the decision's; when empty, the agent's own passes
  Framing framing{};
};

// Appends the request head the upstream receives: HTTP/1.1 (keep-alive), the agent's method and
// fields less the hop-by-hop ones and those its Connection field names, Host, Authorization,
// Proxy-Authorization, Expect, Content-Length, Transfer-Encoding, every x-aegis-* field and any
// field named like the route's credential; then Host, the credential, traceparent and the
// framing from `head`.
void AppendUpstreamHead(std::string& out, const boost::beast::http::request_header<>& req,
                        const UpstreamHead& head);

using Field = std::pair<std::string_view, std::string_view>;

// Appends the response head the client receives: HTTP/1.1 with the upstream's status and reason
// and its fields less the hop-by-hop ones, those its Connection field names, Content-Length,
// Transfer-Encoding and every x-aegis-* field; then `extra` and the framing, and
// "Connection: close" unless `keep_alive`.
void AppendResponseHead(std::string& out, const boost::beast::http::response_header<>& res,
                        std::span<const Field> extra, Framing framing, bool keep_alive);

// Chunked transfer coding (RFC 9112 section 7.1): a chunk is its size line, the data and CRLF;
// the body ends with kLastChunk.
void AppendChunkSize(std::string& out, uint64_t size);
inline constexpr std::string_view kCrlf = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace aegis::proxy

#endif  // AEGIS_FRONTDOORS_PROXY_WIRE_H_
