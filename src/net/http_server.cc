#include "net/http_server.h"

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/strings.h"

namespace aegis::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

common::Status ParseHostPort(std::string_view address, std::string& host, int& port) {
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return common::InvalidArgumentError(
        common::StrCat("listen address \"", address, "\" must be host:port"));
  }
  host = std::string(address.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::string_view p = address.substr(colon + 1);
  auto res = std::from_chars(p.data(), p.data() + p.size(), port);
  if (res.ec != std::errc() || res.ptr != p.data() + p.size() || port < 0 || port > 65535) {
    return common::InvalidArgumentError(
        common::StrCat("listen address \"", address, "\" has an invalid port"));
  }
  return common::OkStatus();
}

class Session;

struct HttpServer::Impl {
  // Declared before the io_context so they outlive it: destroying the io_context destroys
  // handlers still queued, and with them the last references to sessions, whose destructors
  // use these.
  std::mutex mu;
  std::condition_variable drained;
  std::set<Session*> sessions;  // guarded by mu
  std::atomic<size_t> connections{0};
  std::atomic<bool> draining{false};
  bool stopped = false;  // guarded by mu

  HttpServerOptions options;
  HttpHandler handler;
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::vector<std::thread> threads;

  void Accept();
};

// One connection: read a request, answer it, repeat while keep-alive holds.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server) {}

  void Start() {
    {
      std::lock_guard<std::mutex> lock(server_.mu);
      server_.sessions.insert(this);
    }
    WaitForRequest();
  }

  ~Session() {
    std::lock_guard<std::mutex> lock(server_.mu);
    server_.sessions.erase(this);
    server_.connections.fetch_sub(1);
    server_.drained.notify_all();
  }

  // Closes the connection if it is between requests; a request in progress finishes first.
  // The caller holds a reference, and must not hold the server's mutex when dropping it.
  void CloseIfIdle() {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->idle_) {
        beast::error_code ec;
        self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        self->stream_.close();
      }
    });
  }

 private:
  // Waits for the first bytes of the next request under the idle timeout, then reads the whole
  // request under the request timeout.
  void WaitForRequest() {
    idle_ = true;
    if (server_.draining.load()) return Close();
    if (buffer_.size() > 0) return ReadRequest();
    stream_.expires_after(server_.options.idle_timeout);
    stream_.async_read_some(
        buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, size_t n) {
          if (ec) return self->Close();
          self->buffer_.commit(n);
          self->ReadRequest();
        });
  }

  void ReadRequest() {
    idle_ = false;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_.options.max_header_bytes));
    parser_->body_limit(server_.options.max_body_bytes);
    stream_.expires_after(server_.options.request_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->OnRead(ec);
                     });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset) {
      return Close();
    }
    if (ec == beast::error::timeout) return Refuse(http::status::request_timeout, "timeout",
                                                   "the request did not arrive in time");
    if (ec == http::error::header_limit) {
      return Refuse(http::status::request_header_fields_too_large, "headers_too_large",
                    common::StrCat("request line and headers exceed ",
                                   server_.options.max_header_bytes, " bytes"));
    }
    if (ec == http::error::body_limit) {
      return Refuse(http::status::payload_too_large, "body_too_large",
                    common::StrCat("body exceeds ", server_.options.max_body_bytes, " bytes"));
    }
    if (ec) return Refuse(http::status::bad_request, "bad_request", "malformed HTTP request");

    HttpRequest request = parser_->release();
    auto response = std::make_shared<HttpResponse>();
    response->version(request.version());
    response->result(http::status::ok);
    server_.handler(request, *response);
    response->set(http::field::server, "aegis");
    bool keep_alive = request.keep_alive() && !server_.draining.load();
    response->keep_alive(keep_alive);
    response->prepare_payload();
    Write(response, !keep_alive, request.method() == http::verb::head);
  }

  void Refuse(http::status status, std::string_view code, const std::string& message) {
    if (server_.options.on_refused) server_.options.on_refused(static_cast<int>(status));
    auto response = std::make_shared<HttpResponse>();
    response->version(11);
    response->result(status);
    response->set(http::field::content_type, "application/json");
    std::string body = "{\"error\":{\"code\":\"";
    body += code;
    body += "\",\"message\":\"";
    body += message;  // fixed texts above; no user bytes
    body += "\"}}";
    response->body() = std::move(body);
    response->keep_alive(false);
    response->prepare_payload();
    Write(response, true);
  }

  // Serialises the response into one buffer and writes it with a single gather-free write.
  // Our responses are small and have few headers; this costs a fraction of Beast's generic
  // serializer. The response must have had prepare_payload() called.
  void Write(std::shared_ptr<HttpResponse> response, bool close, bool head = false) {
    out_.clear();
    out_ += response->version() == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out_ += std::to_string(response->result_int());
    out_ += ' ';
    out_ += http::obsolete_reason(response->result());
    out_ += "\r\n";
    for (const auto& field : *response) {
      out_ += field.name_string();
      out_ += ": ";
      out_ += field.value();
      out_ += "\r\n";
    }
    out_ += "\r\n";
    if (!head) out_ += response->body();  // a HEAD response has the length but no body
    stream_.expires_after(server_.options.request_timeout);
    asio::async_write(stream_, asio::buffer(out_),
                      [self = shared_from_this(), close](beast::error_code ec, size_t) {
                        if (ec || close) return self->Close();
                        self->WaitForRequest();
                      });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.close();
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string out_;  // the response being written; reused across requests
  std::atomic<bool> idle_{true};
};

void HttpServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      return Accept();
    }
    if (draining.load() || connections.load() >= options.max_connections) {
      if (options.on_refused) options.on_refused(503);
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      connections.fetch_add(1);
      std::make_shared<Session>(std::move(socket), *this)->Start();
    }
    Accept();
  });
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->handler = std::move(handler);
}

HttpServer::~HttpServer() { Stop(std::chrono::milliseconds(0)); }

common::Status HttpServer::Start() {
  std::string host;
  int port;
  common::Status st = ParseHostPort(impl_->options.address, host, port);
  if (!st.ok()) return st;
  beast::error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) {
    return common::InvalidArgumentError(
        common::StrCat("listen address \"", impl_->options.address, "\": host must be an IP"));
  }
  tcp::endpoint endpoint(ip, static_cast<unsigned short>(port));
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return common::Status(common::StatusCode::kUnavailable,
                          common::StrCat("cannot listen on ", impl_->options.address, ": ",
                                         ec.message()));
  }
  impl_->Accept();
  int threads = impl_->options.threads > 0
                    ? impl_->options.threads
                    : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 0; i < threads; ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
  return common::OkStatus();
}

int HttpServer::port() const {
  beast::error_code ec;
  auto endpoint = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

void HttpServer::Stop(std::chrono::milliseconds drain_timeout) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  impl_->draining.store(true);
  asio::post(impl_->ioc, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  // Take references under the lock, act on them outside it: a session whose last reference is
  // dropped here runs its destructor, which takes the same lock.
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (Session* s : impl_->sessions) {
      if (auto ref = s->weak_from_this().lock()) live.push_back(std::move(ref));
    }
  }
  for (auto& s : live) s->CloseIfIdle();
  live.clear();
  {
    std::unique_lock<std::mutex> lock(impl_->mu);
    impl_->drained.wait_for(lock, drain_timeout, [this] { return impl_->sessions.empty(); });
  }
  impl_->ioc.stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace aegis::net
