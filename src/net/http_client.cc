#include "net/http_client.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

#include "common/host.h"
#include "common/strings.h"

namespace aegis::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using common::InvalidArgumentError;
using common::StrCat;
using common::UnavailableError;

namespace {

constexpr size_t kMaxResponseHeaderBytes = 64 * 1024;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 9110 tchar.
bool IsTokenChar(char c) {
  return IsAlnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// RFC 3986 pchar minus '%' (checked separately), plus '/' and '?'.
bool IsPathOrQueryChar(char c) {
  return IsAlnum(c) || std::string_view("-._~!$&'()*+,;=:@/?").find(c) != std::string_view::npos;
}

// Runs handlers until `done` or the deadline. Returns `done`.
bool RunUntil(asio::io_context& ioc, Clock::time_point deadline, const bool& done) {
  ioc.restart();
  while (!done) {
    if (ioc.run_one_until(deadline) == 0) break;
  }
  return done;
}

// Where a message says the request went: the origin, never the path.
common::Status Failure(std::string_view doing, const std::string& where, beast::error_code ec,
                       Clock::time_point deadline) {
  if (ec == beast::error::timeout || Clock::now() >= deadline) {
    return UnavailableError(StrCat("timed out ", doing, " ", where));
  }
  return UnavailableError(StrCat(doing, " ", where, " failed: ", ec.message()));
}

// Sends the request and reads the answer on a connected (and, for https, handshaken) stream.
template <class Stream>
common::StatusOr<FetchResponse> Exchange(asio::io_context& ioc, Stream& stream,
                                         beast::tcp_stream& tcp,
                                         http::request<http::string_body>& request,
                                         Clock::time_point deadline, const std::string& where) {
  // The tcp_stream's own timer enforces the deadline on every read and write; the grace
  // period only guards against a handler that never runs.
  const Clock::time_point guard = deadline + std::chrono::seconds(1);
  beast::error_code ec;
  bool done = false;
  tcp.expires_at(deadline);
  http::async_write(stream, request, [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  if (!RunUntil(ioc, guard, done)) ec = beast::error::timeout;
  if (ec) return Failure("sending the request to", where, ec, deadline);

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.header_limit(kMaxResponseHeaderBytes);
  parser.body_limit(kMaxFetchBodyBytes);
  if (request.method() == http::verb::head) parser.skip(true);
  // The header first, then the body: Boost 1.74's parser loses the body_limit error for a
  // Content-Length over the limit when it reads eagerly (as http::read does), so the length
  // is checked here between the two.
  done = false;
  tcp.expires_at(deadline);
  http::async_read_header(stream, buffer, parser, [&](beast::error_code e, size_t) {
    ec = e;
    done = true;
  });
  if (!RunUntil(ioc, guard, done)) ec = beast::error::timeout;
  if (!ec && parser.content_length() && *parser.content_length() > kMaxFetchBodyBytes) {
    ec = http::error::body_limit;
  }
  if (!ec && !parser.is_done()) {
    done = false;
    tcp.expires_at(deadline);
    http::async_read(stream, buffer, parser, [&](beast::error_code e, size_t) {
      ec = e;
      done = true;
    });
    if (!RunUntil(ioc, guard, done)) ec = beast::error::timeout;
  }
  if (ec == ssl::error::stream_truncated && parser.is_header_done()) {
    // A TLS peer that closes without close_notify, after a body delimited by the close.
    beast::error_code eof;
    parser.put_eof(eof);
    if (!eof && parser.is_done()) ec = {};
  }
  if (ec == http::error::body_limit) {
    return common::ResourceExhaustedError(
        StrCat("response body from ", where, " exceeds ", kMaxFetchBodyBytes, " bytes"));
  }
  if (ec) return Failure("reading the response from", where, ec, deadline);

  auto message = parser.release();
  FetchResponse response;
  response.status = static_cast<int>(message.result_int());
  for (const auto& field : message) {
    response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  response.body = std::move(message.body());
  return response;
}

}  // namespace

const std::string* FetchResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return &value;
  }
  return nullptr;
}

std::string Url::HostHeader() const {
  std::string out = host.find(':') != std::string::npos ? StrCat("[", host, "]") : host;
  if (explicit_port) out += StrCat(":", port);
  return out;
}

std::string Url::Origin() const { return StrCat(tls ? "https://" : "http://", HostHeader()); }

common::StatusOr<Url> ParseUrl(std::string_view text) {
  for (unsigned char c : text) {
    if (c <= 0x20 || c >= 0x7f) {
      return InvalidArgumentError("URL contains a space, control character or non-ASCII byte");
    }
    if (c == '\\') return InvalidArgumentError("URL contains a backslash");
  }
  size_t sep = text.find("://");
  if (sep == std::string_view::npos) {
    return InvalidArgumentError("URL must start with http:// or https://");
  }
  Url url;
  std::string_view scheme = text.substr(0, sep);
  if (EqualsIgnoreCase(scheme, "https")) {
    url.tls = true;
  } else if (!EqualsIgnoreCase(scheme, "http")) {
    return InvalidArgumentError("URL scheme must be http or https");
  }
  std::string_view rest = text.substr(sep + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (authority.empty()) return InvalidArgumentError("URL has no host");
  if (authority.find('@') != std::string_view::npos) {
    return InvalidArgumentError("URL must not contain userinfo (user@host)");
  }
  int port = 0;
  auto host = common::NormalizeHost(authority, &port);
  if (!host.ok()) return InvalidArgumentError(StrCat("URL host: ", host.status().message()));
  url.host = *host;
  if (url.host.front() == '[') {
    url.host = url.host.substr(1, url.host.size() - 2);
    boost::system::error_code ec;
    asio::ip::make_address_v6(url.host, ec);
    if (ec) return InvalidArgumentError("URL host: invalid IPv6 literal");
    url.host_is_ip = true;
  } else {
    boost::system::error_code ec;
    asio::ip::make_address_v4(url.host, ec);
    url.host_is_ip = !ec;
  }
  url.explicit_port = port != 0;
  url.port = port != 0 ? port : (url.tls ? 443 : 80);

  if (path.find('#') != std::string_view::npos) {
    return InvalidArgumentError("URL must not contain a fragment ('#')");
  }
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '%') {
      if (i + 2 >= path.size() || !IsHex(path[i + 1]) || !IsHex(path[i + 2])) {
        return InvalidArgumentError("URL has a '%' not followed by two hex digits");
      }
      i += 2;
    } else if (!IsPathOrQueryChar(c)) {
      return InvalidArgumentError(StrCat("URL path or query contains '", c, "'"));
    }
  }
  if (path.empty() || path[0] == '?') {
    url.target = StrCat("/", path);
  } else {
    url.target = std::string(path);
  }
  return url;
}

common::Status CheckHeader(std::string_view name, std::string_view value) {
  if (!IsToken(name)) return InvalidArgumentError("header name is not an HTTP token");
  for (std::string_view reserved : {"Host", "Content-Length", "Transfer-Encoding", "Connection"}) {
    if (EqualsIgnoreCase(name, reserved)) {
      return InvalidArgumentError(StrCat("header ", reserved, " is set by the client itself"));
    }
  }
  for (unsigned char c : value) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      return InvalidArgumentError(StrCat("header ", name, " has a control character in its value"));
    }
  }
  return common::OkStatus();
}

common::StatusOr<FetchResponse> Fetch(const FetchRequest& request) {
  const Clock::time_point deadline = Clock::now() + request.timeout;
  auto parsed = ParseUrl(request.url);
  if (!parsed.ok()) return parsed.status();
  const Url& url = *parsed;
  if (!IsToken(request.method)) return InvalidArgumentError("method is not an HTTP token");
  for (const auto& [name, value] : request.headers) {
    if (auto s = CheckHeader(name, value); !s.ok()) return s;
  }

  http::request<http::string_body> req;
  http::verb verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) {
    req.method_string(request.method);
  } else {
    req.method(verb);
  }
  req.target(url.target);
  req.version(11);
  req.set(http::field::host, url.HostHeader());
  req.set(http::field::user_agent, "aegis");
  for (const auto& [name, value] : request.headers) req.insert(name, value);
  req.set(http::field::connection, "close");
  req.body() = request.body;
  if (!request.body.empty() || (verb != http::verb::get && verb != http::verb::head &&
                                verb != http::verb::delete_ && verb != http::verb::options)) {
    req.content_length(request.body.size());
  }

  const std::string where = url.Origin();
  std::optional<ssl::context> tls_context;
  if (url.tls) {
    tls_context.emplace(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(tls_context->native_handle(), TLS1_2_VERSION);
    tls_context->set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (request.ca_file.empty()) {
      tls_context->set_default_verify_paths(ec);
      if (ec) return UnavailableError(StrCat("cannot load the system's CAs: ", ec.message()));
    } else {
      tls_context->load_verify_file(request.ca_file, ec);
      if (ec) {
        return InvalidArgumentError(
            StrCat("ca_file ", request.ca_file, " cannot be loaded: ", ec.message()));
      }
    }
  }

  // Declared first so it is destroyed last: handlers still queued when a deadline passes are
  // destroyed with it, after everything they refer to.
  asio::io_context ioc;
  const Clock::time_point guard = deadline + std::chrono::seconds(1);
  beast::error_code ec;
  bool done = false;

  std::vector<tcp::endpoint> endpoints;
  if (url.host_is_ip) {
    endpoints.emplace_back(asio::ip::make_address(url.host), static_cast<uint16_t>(url.port));
  } else {
    // The resolver cannot be interrupted once getaddrinfo runs; the deadline still returns
    // control to the caller, and the system resolver's own timeouts bound the rest.
    tcp::resolver resolver(ioc);
    resolver.async_resolve(url.host, std::to_string(url.port),
                           [&](beast::error_code e, const tcp::resolver::results_type& results) {
                             ec = e;
                             for (const auto& entry : results)
                               endpoints.push_back(entry.endpoint());
                             done = true;
                           });
    if (!RunUntil(ioc, deadline, done)) {
      return UnavailableError(StrCat("timed out resolving ", where));
    }
    if (ec) return UnavailableError(StrCat("resolving ", where, " failed: ", ec.message()));
    if (endpoints.empty()) return UnavailableError(StrCat("resolving ", where, " found nothing"));
  }

  auto connect = [&](beast::tcp_stream& tcp) -> common::Status {
    done = false;
    tcp.expires_at(deadline);
    tcp.async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) {
      ec = e;
      done = true;
    });
    if (!RunUntil(ioc, guard, done)) ec = beast::error::timeout;
    if (ec) return Failure("connecting to", where, ec, deadline);
    return common::OkStatus();
  };

  if (!url.tls) {
    beast::tcp_stream stream(ioc);
    if (auto s = connect(stream); !s.ok()) return s;
    return Exchange(ioc, stream, stream, req, deadline, where);
  }

  ssl::stream<beast::tcp_stream> stream(ioc, *tls_context);
  SSL* ssl_handle = stream.native_handle();
  if (url.host_is_ip) {
    // RFC 6066: no SNI for address literals; the certificate must name the address.
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_handle), url.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_handle, url.host.c_str());
    SSL_set_hostflags(ssl_handle, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl_handle, url.host.c_str()) != 1) {
      return common::InternalError("cannot set the TLS host name to verify");
    }
  }
  beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
  if (auto s = connect(tcp); !s.ok()) return s;

  done = false;
  tcp.expires_at(deadline);
  stream.async_handshake(ssl::stream_base::client, [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  if (!RunUntil(ioc, guard, done)) ec = beast::error::timeout;
  if (ec) {
    long verify = SSL_get_verify_result(ssl_handle);
    if (verify != X509_V_OK) {
      return UnavailableError(StrCat("TLS certificate verification failed for ", where, ": ",
                                     X509_verify_cert_error_string(verify)));
    }
    return Failure("in the TLS handshake with", where, ec, deadline);
  }
  return Exchange(ioc, stream, tcp, req, deadline, where);
}

}  // namespace aegis::net
