// HttpServer: an HTTP/1.1 server on Boost.Beast for the decision service's listeners.
//
// Keep-alive, one I/O thread per core (configurable), and the limits DESIGN.md section 7 asks
// for: request-line-plus-header size, body size, connection count, the time a connection may sit
// idle between requests, and the time a request may take to arrive once it has started (slow
// clients). Requests over a limit are answered (431, 413, 408) and the connection closed;
// everyone else keeps being served. Stop() drains: no new connections, in-flight requests finish,
// idle connections close.
//
// The handler runs on an I/O thread and must not block; it fills in the response (status,
// headers, body) and the server adds Content-Length and keep-alive handling.
#ifndef AEGIS_NET_HTTP_SERVER_H_
#define AEGIS_NET_HTTP_SERVER_H_

#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace aegis::net {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;
using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;

struct HttpServerOptions {
  std::string address = "127.0.0.1:8181";  // host:port; port 0 picks a free port
  int threads = 0;                          // 0: one per core
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1 << 20;
  size_t max_connections = 10000;
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds request_timeout{10000};
  // Called for a request the server itself refuses (malformed, over a limit), for metrics.
  std::function<void(int status)> on_refused;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving on background threads. Returns an error if the address is
  // invalid or cannot be bound.
  common::Status Start();
  // The bound port (useful with port 0); valid after Start.
  int port() const;
  // Stops accepting, lets in-flight requests finish (up to `drain_timeout`), closes idle
  // connections and joins the threads. Idempotent.
  void Stop(std::chrono::milliseconds drain_timeout);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Splits "host:port" (or "[v6]:port"); returns InvalidArgument on anything else.
common::Status ParseHostPort(std::string_view address, std::string& host, int& port);

}  // namespace aegis::net

#endif  // AEGIS_NET_HTTP_SERVER_H_
