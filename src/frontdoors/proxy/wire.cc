#include "frontdoors/proxy/wire.h"

#include <boost/beast/core/string.hpp>
#include <boost/container/small_vector.hpp>
#include <charconv>

namespace aegis::proxy {

namespace http = boost::beast::http;

namespace {

// Header names (and the tokens naming them) compare ignoring ASCII case.
bool Is(std::string_view name, std::string_view other) { return boost::beast::iequals(name, other); }

// The field names a message's Connection fields list (hop-by-hop too, RFC 9110 section 7.6.1).
using ConnectionNames = boost::container::small_vector<std::string_view, 8>;

ConnectionNames NamedInConnection(const http::fields& fields) {
  ConnectionNames names;
  for (const auto& f : fields) {
    if (!Is(f.name_string(), "connection")) continue;
    std::string_view v = f.value();
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view token = v.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
        token.remove_prefix(1);
      }
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      if (!token.empty()) names.push_back(token);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return names;
}

bool Named(const ConnectionNames& names, std::string_view name) {
  for (std::string_view n : names) {
    if (Is(n, name)) return true;
  }
  return false;
}

// Hop-by-hop header fields (RFC 9110 section 7.6.1): they describe one connection and never pass
// a proxy.
bool IsHopByHop(std::string_view name) {
  static constexpr std::string_view kHop[] = {
      "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
      "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"};
  for (std::string_view h : kHop) {
    if (Is(name, h)) return true;
  }
  return false;
}

bool IsAegisHeader(std::string_view name) {
  return name.size() >= 8 && Is(name.substr(0, 8), "x-aegis-");
}

void AppendField(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  out += ": ";
  out += value;
  out += kCrlf;
}

void AppendNumber(std::string& out, uint64_t n, int base) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, n, base);
  out.append(buf, r.ptr);
}

void AppendFraming(std::string& out, Framing framing) {
  if (framing.kind == Framing::kLength) {
    out += "Content-Length: ";
    AppendNumber(out, framing.length, 10);
    out += kCrlf;
  } else if (framing.kind == Framing::kChunked) {
    out += "Transfer-Encoding: chunked\r\n";
  }
}

}  // namespace

void AppendUpstreamHead(std::string& out, const http::request_header<>& req,
                        const UpstreamHead& head) {
  ConnectionNames named = NamedInConnection(req);
  out += req.method_string();
  out += ' ';
  out += head.target;
  out += " HTTP/1.1\r\n";
  AppendField(out, "Host", head.host);
  for (const auto& f : req) {
    std::string_view name = f.name_string();
    bool drop = IsHopByHop(name) || Is(name, "host") || Is(name, "authorization") ||
                Is(name, "content-length") || Is(name, "expect") || IsAegisHeader(name) ||
                (!head.traceparent.empty() && Is(name, "traceparent")) ||
                (!head.credential_header.empty() && Is(name, head.credential_header)) ||
                Named(named, name);
    if (!drop) AppendField(out, name, f.value());
  }
  if (!head.credential_header.empty()) {
    AppendField(out, head.credential_header, head.credential_value);
  }
  if (!head.traceparent.empty()) AppendField(out, "traceparent", head.traceparent);
  AppendFraming(out, head.framing);
  out += kCrlf;
}

void AppendResponseHead(std::string& out, const http::response_header<>& res,
                        std::span<const Field> extra, Framing framing, bool keep_alive) {
  ConnectionNames named = NamedInConnection(res);
  out += "HTTP/1.1 ";
  AppendNumber(out, res.result_int(), 10);
  out += ' ';
  std::string_view reason = res.reason();
  out += reason.empty() ? std::string_view(http::obsolete_reason(res.result())) : reason;
  out += kCrlf;
  for (const auto& f : res) {
    std::string_view name = f.name_string();
    bool drop = IsHopByHop(name) || Is(name, "content-length") || IsAegisHeader(name) ||
                Named(named, name);
    if (!drop) AppendField(out, name, f.value());
  }
  for (const auto& [name, value] : extra) AppendField(out, name, value);
  AppendFraming(out, framing);
  if (!keep_alive) out += "Connection: close\r\n";
  out += kCrlf;
}

void AppendChunkSize(std::string& out, uint64_t size) {
  AppendNumber(out, size, 16);
  out += kCrlf;
}

}  // namespace aegis::proxy
