#include "frontdoors/proxy/proxy.h"

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
#include <coroutine>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "common/json.h"
#include "common/strings.h"
#include "engine/call_context.h"
#include "frontdoors/headers.h"
#include "frontdoors/proxy/mcp.h"
#include "frontdoors/proxy/deadlines.h"
#include "frontdoors/proxy/request_target.h"
#include "frontdoors/proxy/wire.h"
#include "net/http_server.h"
#include "redact/redact.h"

namespace aegis::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using common::Json;
using common::StrCat;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// One executor type throughout, rather than Asio's type-erased any_io_executor: every operation
// copies its executor, and an erased copy is a call through a table (a few percent of the
// proxy's time in profiles).
using Executor = asio::io_context::executor_type;
template <typename T>
using awaitable = asio::awaitable<T, Executor>;
constexpr asio::use_awaitable_t<Executor> use_awaitable;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using Resolver = asio::ip::basic_resolver<tcp, Executor>;
using Timer = asio::basic_waitable_timer<Clock, asio::wait_traits<Clock>, Executor>;

namespace {

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// A host as NormalizeHost gives it ("[2001:db8::1]") as the resolver takes it.
std::string DialHost(std::string_view host) {
  if (host.size() > 2 && host.front() == '[') return std::string(host.substr(1, host.size() - 2));
  return std::string(host);
}

// An upstream's host as policies see request hosts (IPv6 in brackets).
std::string PolicyHost(const net::Url& url) {
  return url.host.find(':') != std::string::npos ? StrCat("[", url.host, "]") : url.host;
}

// A request body left unread on the client connection, to be streamed upstream after the
// decision (bodies the decision does not read: not JSON, and large or chunked).
struct BodyStream {
  http::request_parser<http::buffer_body>& parser;
  beast::flat_buffer& buffer;
};

// Bodies up to this size are read before the decision even when nothing reads them.
constexpr uint64_t kStreamBodiesAbove = 64 * 1024;

// What became of a request, for aegis_proxy_requests_total.
enum Result {
  kForwarded,
  kRefused,       // the decision refused the call
  kBadRequest,    // refused before a decision (hostile target, bad body, bad token)
  kNoRoute,
  kUpstreamError,
  kUpstreamTimeout,
  kClientAborted,  // the client stopped sending a streamed body (or timed out) mid-request
  kResults
};
constexpr std::string_view kResultNames[kResults] = {
    "forwarded", "refused", "bad_request", "no_route", "upstream_error", "upstream_timeout",
    "client_aborted"};

bool IsJsonType(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  return beast::iequals(t, "application/json") ||
         (t.size() > 5 && beast::iequals(t.substr(t.size() - 5), "+json"));
}

// Percent-encodes a query key or value (everything but RFC 3986 unreserved characters).
void AppendQueryEncoded(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : s) {
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
}

// The string form of a query value after sanitizing (redactions are strings; anything else is
// its JSON text).
std::string QueryValue(const Json& v) { return v.is_string() ? v.as_string() : v.Canonical(); }

// One upstream connection, plain or TLS, pooled by origin when the exchange left it reusable.
struct Upstream {
  explicit Upstream(Deadlines& deadlines) : deadline(deadlines) {}
  std::string origin;  // pool key: "https://host:port"
  std::optional<Socket> plain;
  std::unique_ptr<beast::ssl_stream<Socket>> tls;
  Deadlines::Deadline deadline;  // watches lowest()
  beast::flat_buffer buffer;
  Clock::time_point idle_since;
  bool reused = false;
  // The last answer had no body (HEAD, 204, 304): an upstream that sends one anyway leaves it on
  // the connection, so the connection is checked before it serves again.
  bool check_before_reuse = false;

  Socket& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

// An agent's connection to the proxy.
struct Client {
  Client(Socket s, Deadlines& deadlines) : socket(std::move(s)), deadline(deadlines, &socket) {}
  Socket socket;
  // Set before each operation on the socket and cleared after it: a client waiting for its
  // answer is not timed out for the upstream's slowness.
  Deadlines::Deadline deadline;
  beast::flat_buffer buffer;     // what was read of the next request
  std::string upstream_head;     // the head of the request being sent upstream
  std::string head;              // a response head being sent
  std::array<char, 16384> body;  // a piece of a body being relayed, either way
  // The request being served is HTTP/1.1: its answer may be chunked (an HTTP/1.0 client's
  // answer of unknown length ends with the connection instead).
  bool http11 = true;
};

// A request as it goes upstream: its head (wire.h) and, unless streamed, its body.
struct Outgoing {
  std::string_view head;
  std::string body;
  bool head_request = false;  // a HEAD: the response has no body
  // Idempotent (RFC 9110 section 9.2.2): may be sent again when a pooled connection turns out
  // closed before any answer. A POST never is: it could have reached the application.
  bool retryable = false;
  // The upstream connection may serve another request afterwards. Not after a GET or HEAD with
  // a body: an upstream that ignores such a body would read it as a request of its own, and its
  // answer would go to the next client on the connection.
  bool reusable = true;
};

// Bytes a parser may leave unconsumed waiting for the end of a line (chunk sizes, extensions,
// trailers; Beast 1.74 bounds none of them): beyond this the message is refused.
constexpr size_t kMaxUnparsedBytes = 64 * 1024;

enum class UpstreamError { kNone, kConnect, kTls, kIo, kTimeout, kTooLarge, kMalformed };

struct Exchange {
  UpstreamError error = UpstreamError::kNone;
  std::string message;       // for logs and the 502 body: never the path or query
  bool wrote_nothing = false;  // failed before any byte of the response arrived
  Response response;
};

}  // namespace

struct Proxy::Impl {
  struct Worker {
    Deadlines deadlines;  // first: the last to go, after every socket that registered with it
    // Only this worker's thread touches its sockets: the reactor needs no locks.
    asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
    Acceptor acceptor{ioc};
    // Idle upstream connections by origin; only this worker's thread touches it.
    std::unordered_map<std::string, std::deque<std::unique_ptr<Upstream>>> idle;
    std::thread thread;
  };

  Impl(service::ProxyConfig c, std::vector<Route> r, const service::Decider& d,
       const service::Identity* i, LogFn l)
      : config(std::move(c)),
        routes(std::move(r)),
        decider(d),
        identity(i),
        log(std::move(l)),
        tls(ssl::context::tls_client),
        response_redactor(*redact::Redactor::Create({"all"}, redact::Style::kMask, "")) {}

  service::ProxyConfig config;
  std::vector<Route> routes;
  const service::Decider& decider;
  const service::Identity* identity;
  LogFn log;
  ssl::context tls;
  redact::Redactor response_redactor;
  std::vector<std::unique_ptr<Worker>> workers;
  int bound_port = 0;

  std::atomic<bool> draining{false};
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> active{0};
  std::array<std::atomic<int64_t>, kResults> results{};
  std::atomic<int64_t> upstream_new{0}, upstream_reused{0};
  std::mutex mu;
  std::condition_variable idle_cv;
  bool stopped = false;

  // Counts a request waiting on an upstream while it lives (Stop's drain waits for none); the
  // last one to end during a drain wakes Stop. `counted` false: not a request a drain waits for.
  class InFlight {
   public:
    InFlight(Impl& impl, bool counted = true) : impl_(counted ? &impl : nullptr) {
      if (impl_) impl_->active.fetch_add(1, std::memory_order_relaxed);
    }
    ~InFlight() {
      if (impl_ && impl_->active.fetch_sub(1, std::memory_order_relaxed) == 1 &&
          impl_->draining.load()) {
        std::lock_guard lock(impl_->mu);
        impl_->idle_cv.notify_all();
      }
    }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;

   private:
    Impl* impl_;
  };

  void Log(std::string_view level, const std::string& message) const {
    if (log) log(level, message);
  }
  void Count(Result r) { results[r].fetch_add(1, std::memory_order_relaxed); }

  awaitable<void> Accept(Worker& w);
  // Closes the sockets past their deadlines, every tick, until the worker stops.
  awaitable<void> Sweep(Worker& w);
  awaitable<void> Serve(Worker& w, Socket socket);
  // Handles one request and writes its response; returns whether the client connection may
  // serve another request.
  // `body` (optional): the request's body is still on the client connection (see BodyStream).
  awaitable<bool> Handle(Worker& w, Client& client, Request& req, BodyStream* body = nullptr);
  // Writes a whole response to the client; returns whether it was sent and the connection may
  // go on (`res.keep_alive()`).
  awaitable<bool> Respond(Client& client, Response& res);
  // CONNECT on a route with tunnel: true, once allowed: a byte pipe to the host.
  awaitable<bool> Tunnel(Worker& w, Client& client, const RequestTarget& target);
  // A connection to `origin`: pooled, or new (ex tells why there is none).
  awaitable<std::unique_ptr<Upstream>> Acquire(Worker& w, const net::Url& origin, Exchange& ex);
  // Gives a connection whose last exchange ended cleanly back to the pool.
  void Release(Worker& w, std::unique_ptr<Upstream> up);
  // One request and its whole (buffered) response.
  awaitable<Exchange> Forward(Worker& w, const net::Url& origin, const Outgoing& out);
  // An MCP route (docs/mcp.md): decides tools/call, filters tools/list, relays the rest.
  awaitable<bool> HandleMcp(Worker& w, Client& client, Request& req, const Route& route,
                            const RequestTarget& target);
  // Sends `out` and streams the response to the client; each JSON-RPC message in it (a JSON
  // body or server-sent events) goes through `transform`, which returns whether it changed it.
  // Without a transform the body is streamed as it comes, whatever its size. `on_header`
  // (optional) sees the upstream's response header first (the actual cost).
  awaitable<bool> Relay(Worker& w, Client& client, const net::Url& origin, const Outgoing& out,
                        const std::function<bool(Json&)>& transform, const engine::Decision* d,
                        bool keep_alive,
                        const std::function<void(const http::fields&)>& on_header = nullptr,
                        BodyStream* body_stream = nullptr);
  awaitable<std::unique_ptr<Upstream>> Connect(Worker& w, const net::Url& origin, Exchange& ex);
  Clock::duration sweep_tick{std::chrono::milliseconds(100)};

  const Route* RouteForPath(std::string_view path) const {
    for (const Route& r : routes) {
      if (path == r.prefix ||
          (path.size() > r.prefix.size() && path.compare(0, r.prefix.size(), r.prefix) == 0 &&
           path[r.prefix.size()] == '/')) {
        return &r;
      }
    }
    return nullptr;
  }
  // The route serving `host` at `port` (absolute-form and CONNECT targets): same host, and the
  // same explicit port — or, when the target gives none, a route on its scheme's default port,
  // so that `http://api.stripe.com/` through HTTP_PROXY reaches `https://api.stripe.com`.
  const Route* RouteForHost(std::string_view host, int port, bool explicit_port) const {
    for (const Route& r : routes) {
      if (DialHost(host) != r.upstream.host) continue;
      bool default_port = r.upstream.port == (r.upstream.tls ? 443 : 80);
      if (explicit_port ? r.upstream.port == port : default_port) return &r;
    }
    return nullptr;
  }
};

namespace {

// A JSON error answer, as the decide API gives: {"error": code, "message": ...}.
void ErrorResponse(Response& res, unsigned status, std::string_view code,
                   std::string_view message) {
  res.result(status);
  res.set(http::field::content_type, "application/json");
  std::string body = "{\"error\":";
  common::AppendJsonString(body, code);
  body += ",\"message\":";
  common::AppendJsonString(body, message);
  body += "}";
  res.body() = std::move(body);
}

// The decision's headers on a response the upstream gave.
std::array<Field, 4> DecisionFields(const engine::Decision& d) {
  return {Field{"x-aegis-decision", policy::EffectName(d.outcome)},
          Field{"x-aegis-decision-id", d.id_view()},
          Field{"x-aegis-policy-version", d.policy->version},
          Field{"x-aegis-enforced", d.enforced() ? "true" : "false"}};
}

void DecisionHeaders(const engine::Decision& d, Response& res) {
  for (const auto& [name, value] : DecisionFields(d)) res.set(name, value);
}

std::string_view Header(const Request& req, std::string_view name) {
  auto it = req.find(name);
  return it == req.end() ? std::string_view() : std::string_view(it->value());
}

// The dollar amount at `path` in a JSON document, or nullopt.
std::optional<double> CostAt(const Json& doc, const std::vector<std::string>& path) {
  const Json* v = &doc;
  for (const std::string& key : path) {
    if (!v->is_object()) return std::nullopt;
    v = v->Find(key);
    if (!v) return std::nullopt;
  }
  if (v->is_number()) return v->as_double();
  if (v->is_string()) {
    double d = 0;
    const std::string& s = v->as_string();
    auto r = std::from_chars(s.data(), s.data() + s.size(), d);
    if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return d;
  }
  return std::nullopt;
}

std::optional<double> ParseCost(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  double d = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), d);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return d;
}

// The upstream's request (wire.h), its head written into `head` (a buffer the connection
// reuses): `body` goes whole, with its length when the agent's request had a body; or, given
// `streamed`, the body still on the client connection follows the head in the client's framing.
Outgoing ToUpstream(const Request& req, const Route* route, const net::Url& origin,
                    std::string_view target, std::string_view traceparent, std::string body,
                    std::string& head, const BodyStream* streamed = nullptr) {
  Framing framing;
  if (streamed) {
    auto length = streamed->parser.content_length();
    framing = length ? Framing::Length(*length) : Framing::Chunked();
  } else if (!body.empty() || req.has_content_length() || req.chunked()) {
    framing = Framing::Length(body.size());
  }
  std::string host = origin.HostHeader();
  head.clear();
  AppendUpstreamHead(head, req,
                     {.target = target,
                      .host = host,
                      .credential_header = route ? route->credential_header : std::string_view(),
                      .credential_value = route ? route->credential_value : std::string_view(),
                      .traceparent = traceparent,
                      .framing = framing});
  Outgoing out;
  out.head = head;
  out.body = std::move(body);
  http::verb method = req.method();
  out.head_request = method == http::verb::head;
  out.retryable = method == http::verb::get || method == http::verb::head ||
                  method == http::verb::options || method == http::verb::put ||
                  method == http::verb::delete_ || method == http::verb::trace;
  out.reusable = !((method == http::verb::get || method == http::verb::head) &&
                   framing.kind != Framing::kNone);
  return out;
}

// Whether a response with this status to this request has a body (RFC 9110 section 6.4.1).
bool HasBody(int status, bool head_request) {
  return !head_request && status >= 200 && status != 204 && status != 304;
}

// Writes `buffers` whole. On a plain socket (non-blocking) what the socket takes goes out at once,
// without a trip through the scheduler — the common case, a small message and room in the
// socket's buffer; the rest, and everything over TLS, asynchronously.
template <typename Stream, typename Buffers>
awaitable<beast::error_code> WriteAll(Stream& stream, const Buffers& buffers) {
  beast::error_code ec;
  size_t written = 0;
  if constexpr (std::is_same_v<Stream, Socket>) {
    written = stream.write_some(buffers, ec);
    if (ec == asio::error::would_block) ec = {};
    if (ec || written == asio::buffer_size(buffers)) co_return ec;
  }
  beast::buffers_suffix<Buffers> rest(buffers);
  rest.consume(written);
  co_await asio::async_write(stream, rest, asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

template <typename Stream>
awaitable<beast::error_code> Send(Stream& stream, const Outgoing& out) {
  std::array<asio::const_buffer, 2> buffers{asio::buffer(out.head), asio::buffer(out.body)};
  co_return co_await WriteAll(stream, buffers);
}

// Interim responses (1xx) are dropped, as RFC 9110 section 15.2 lets a proxy do; the final one
// follows on the same connection. 101 never should: the proxy passes no Upgrade.
bool IsInterim(int status) { return status >= 100 && status < 200 && status != 101; }

// Reads the upstream's response header into `p` (fresh), dropping interim answers: after each,
// `fresh(p)` makes a new parser for the next header. `interim` tells whether one came — the
// upstream answered, so the request is never retried.
template <typename Stream, typename Parser, typename Fresh>
awaitable<beast::error_code> ReadFinalHeader(Stream& stream, beast::flat_buffer& buffer,
                                             std::optional<Parser>& p, Fresh fresh,
                                             bool& interim) {
  beast::error_code ec;
  for (;;) {
    co_await http::async_read_header(stream, buffer, *p, asio::redirect_error(use_awaitable, ec));
    if (ec || !IsInterim(p->get().result_int())) co_return ec;
    interim = true;
    fresh(p);
  }
}

template <typename Stream>
awaitable<void> ReadResponse(Stream& stream, Upstream& up, bool head, size_t max_body,
                             Exchange& ex) {
  auto fresh = [&](std::optional<http::response_parser<http::string_body>>& p) {
    p.emplace();
    p->header_limit(64 * 1024);
    p->body_limit(max_body);
    if (head) p->skip(true);
  };
  std::optional<http::response_parser<http::string_body>> p;
  fresh(p);
  bool interim = false;
  beast::error_code ec = co_await ReadFinalHeader(stream, up.buffer, p, fresh, interim);
  http::response_parser<http::string_body>& parser = *p;
  if (!ec && parser.get().result_int() == 101) {
    ex.error = UpstreamError::kMalformed;
    ex.message = "the upstream switched protocols (101) unasked";
    co_return;
  }
  if (!ec && !parser.is_done()) {
    co_await http::async_read(stream, up.buffer, parser, asio::redirect_error(use_awaitable, ec));
  }
  ec = up.deadline.Why(ec);
  if (ec) {
    ex.wrote_nothing = !parser.got_some() && !interim;
    if (ec == beast::error::timeout) {
      ex.error = UpstreamError::kTimeout;
      ex.message = "the upstream did not answer in time";
    } else if (ec == http::error::body_limit) {
      ex.error = UpstreamError::kTooLarge;
      ex.message = "the upstream's response is larger than max_body_bytes";
    } else if (ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
               ec != http::error::end_of_stream) {
      ex.error = UpstreamError::kMalformed;
      ex.message = "the upstream's response is not valid HTTP/1.1: " + ec.message();
    } else {
      ex.error = UpstreamError::kIo;
      ex.message = "reading the upstream's response failed: " + ec.message();
    }
    co_return;
  }
  ex.response = parser.release();
}

}  // namespace

awaitable<std::unique_ptr<Upstream>> Proxy::Impl::Connect(Worker& w, const net::Url& origin,
                                                          Exchange& ex) {
  auto up = std::make_unique<Upstream>(w.deadlines);
  up->origin = origin.Origin();
  auto executor = co_await asio::this_coro::executor;
  Resolver resolver(executor);
  beast::error_code ec;
  auto endpoints = co_await resolver.async_resolve(origin.host, std::to_string(origin.port),
                                                   asio::redirect_error(use_awaitable, ec));
  if (ec) {
    ex.error = UpstreamError::kConnect;
    ex.message = StrCat("cannot resolve ", origin.Origin(), ": ", ec.message());
    co_return nullptr;
  }
  up->plain.emplace(executor);
  up->deadline.Watch(&*up->plain);
  up->deadline.After(config.connect_timeout);
  co_await asio::async_connect(*up->plain, endpoints, asio::redirect_error(use_awaitable, ec));
  ec = up->deadline.Why(ec);
  if (ec) {
    ex.error = ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kConnect;
    ex.message = StrCat("cannot connect to ", origin.Origin(), ": ", ec.message());
    co_return nullptr;
  }
  up->plain->set_option(tcp::no_delay(true), ec);
  up->plain->non_blocking(true, ec);  // WriteAll writes what it can at once
  if (!origin.tls) co_return up;
  up->tls = std::make_unique<beast::ssl_stream<Socket>>(std::move(*up->plain), tls);
  up->plain.reset();
  up->deadline.Watch(&up->lowest());
  SSL* ssl_handle = up->tls->native_handle();
  // Verify the certificate against the host: a name (with SNI) or an IP literal.
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_handle);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  bool set = origin.host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, origin.host.c_str()) == 1
                               : X509_VERIFY_PARAM_set1_host(param, origin.host.c_str(), 0) == 1 &&
                                     SSL_set_tlsext_host_name(ssl_handle, origin.host.c_str()) == 1;
  if (!set) {
    ex.error = UpstreamError::kTls;
    ex.message = StrCat("cannot set up TLS to ", origin.Origin());
    co_return nullptr;
  }
  co_await up->tls->async_handshake(ssl::stream_base::client,
                                    asio::redirect_error(use_awaitable, ec));
  ec = up->deadline.Why(ec);
  if (ec) {
    ex.error = ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kTls;
    ex.message = StrCat("TLS with ", origin.Origin(), " failed: ", ec.message());
    co_return nullptr;
  }
  co_return up;
}

namespace {

// Whether a pooled connection is as it was left: open, and nothing arrived since — an upstream
// that closed it, or sent bytes nobody asked for, would answer the next request wrongly. Over
// TLS, bytes may be a session ticket: only a close shows.
bool StillIdle(Upstream& up) {
  char byte;
  ssize_t n = ::recv(up.lowest().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;
  if (n > 0) return up.tls != nullptr;
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

}  // namespace

awaitable<std::unique_ptr<Upstream>> Proxy::Impl::Acquire(Worker& w, const net::Url& origin,
                                                          Exchange& ex) {
  std::unique_ptr<Upstream> up;
  // A pooled connection first (the most recent, least likely closed by the upstream).
  auto& pool = w.idle[origin.Origin()];
  while (!pool.empty() && !up) {
    up = std::move(pool.back());
    pool.pop_back();
    // Checking costs a syscall: done after a bodiless answer, or an idle second (in which an
    // upstream may have closed the connection: a POST sent on it could not be retried).
    Clock::duration idle = Clock::now() - up->idle_since;
    bool check = up->check_before_reuse || idle > std::chrono::seconds(1);
    if (idle > config.idle_timeout || (check && !StillIdle(*up))) up.reset();
  }
  if (up) {
    up->reused = true;
    upstream_reused.fetch_add(1, std::memory_order_relaxed);
    co_return up;
  }
  up = co_await Connect(w, origin, ex);
  if (up) upstream_new.fetch_add(1, std::memory_order_relaxed);
  co_return up;
}

void Proxy::Impl::Release(Worker& w, std::unique_ptr<Upstream> up) {
  auto& pool = w.idle[up->origin];
  if (pool.size() >= config.max_idle_per_upstream || draining.load()) return;
  // Bytes after the answer (a body sent with a HEAD answer, say) would be the next request's.
  if (up->buffer.size() > 0 || up->deadline.expired() || !up->lowest().is_open()) return;
  up->idle_since = Clock::now();
  up->deadline.Never();
  pool.push_back(std::move(up));
}

awaitable<Exchange> Proxy::Impl::Forward(Worker& w, const net::Url& origin, const Outgoing& out) {
  for (int attempt = 0;; ++attempt) {
    Exchange ex;
    std::unique_ptr<Upstream> up = co_await Acquire(w, origin, ex);
    if (!up) co_return ex;
    up->deadline.After(config.upstream_timeout);
    beast::error_code ec;
    if (up->tls) {
      ec = co_await Send(*up->tls, out);
    } else {
      ec = co_await Send(*up->plain, out);
    }
    ec = up->deadline.Why(ec);
    if (ec) {
      ex.wrote_nothing = true;
      ex.error = ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kIo;
      ex.message = StrCat("sending to ", origin.Origin(), " failed: ", ec.message());
    } else if (up->tls) {
      co_await ReadResponse(*up->tls, *up, out.head_request, config.max_body_bytes, ex);
    } else {
      co_await ReadResponse(*up->plain, *up, out.head_request, config.max_body_bytes, ex);
    }
    // A kept-alive connection the upstream had closed fails before any answer: try once more
    // on a new one. Nothing reached the upstream's application in that case.
    if (ex.error != UpstreamError::kNone) {
      if (up->reused && ex.wrote_nothing && ex.error == UpstreamError::kIo && attempt == 0 &&
          out.retryable) {
        continue;
      }
      co_return ex;
    }
    up->check_before_reuse = !HasBody(ex.response.result_int(), out.head_request);
    if (ex.response.keep_alive() && out.reusable) Release(w, std::move(up));
    co_return ex;
  }
}

awaitable<bool> Proxy::Impl::Respond(Client& client, Response& res) {
  beast::error_code ec;
  client.deadline.After(config.request_timeout);
  co_await http::async_write(client.socket, res, asio::redirect_error(use_awaitable, ec));
  client.deadline.Never();
  co_return !ec && res.keep_alive();
}

awaitable<bool> Proxy::Impl::Handle(Worker& w, Client& client, Request& req,
                                    BodyStream* body_stream) {
  Response res;
  res.version(11);
  client.http11 = req.version() >= 11;
  // A body left unread cannot be skipped reliably: a refusal closes the connection.
  const bool req_keep_alive = req.keep_alive();
  bool keep_alive = req_keep_alive && !body_stream;
  constexpr int kDoor = static_cast<int>(service::FrontDoor::kProxy);
  service::Metrics& metrics = decider.metrics();
  auto send = [&](Result result) -> awaitable<bool> {
    Count(result);
    if (result == kBadRequest || result == kNoRoute) metrics.RecordBadRequest(kDoor);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    co_return co_await Respond(client, res);
  };

  // 1. The target and Host, strictly: anything ambiguous is refused before any decision.
  std::vector<std::string_view> hosts;
  for (auto it = req.find(http::field::host); it != req.end() && it->name() == http::field::host;
       ++it) {
    hosts.push_back(it->value());
  }
  auto target = ParseRequestTarget(req.method_string(), req.target(), hosts);
  if (!target.ok()) {
    ErrorResponse(res, 400, "invalid_request", target.status().message());
    keep_alive = false;
    co_return co_await send(kBadRequest);
  }
  if (!decider.store().Active()) {
    ErrorResponse(res, 503, "not_ready", "no policy is loaded yet");
    co_return co_await send(kBadRequest);
  }

  // 2. Where it goes: a reverse-proxy route by path prefix, or (absolute form) the host named,
  // through its route when one serves that host so that TLS and the credential apply.
  const Route* route = nullptr;
  net::Url origin;
  std::string upstream_path;
  if (target->form == RequestTarget::Form::kAuthority) {
    const Route* r = RouteForHost(target->host, target->port, true);
    if (!r || !r->tunnel) {
      ErrorResponse(res, 403, "tunnel_not_allowed",
                    "CONNECT tunnels carry traffic Aegis cannot inspect; they are refused unless "
                    "a route to this host sets tunnel: true");
      keep_alive = false;
      co_return co_await send(kNoRoute);
    }
    route = r;
  } else if (target->form == RequestTarget::Form::kOrigin) {
    route = RouteForPath(target->path);
    if (!route) {
      ErrorResponse(res, 404, "no_route",
                    "no proxy route serves this path (routes are configured under proxy.routes)");
      co_return co_await send(kNoRoute);
    }
    origin = route->upstream;
    upstream_path = target->path.substr(route->prefix.size());
    if (upstream_path.empty()) upstream_path = "/";
  } else {
    route = RouteForHost(target->host, target->port, target->explicit_port);
    if (route) {
      origin = route->upstream;
    } else {
      origin.tls = target->tls;
      origin.host = DialHost(target->host);
      origin.host_is_ip = target->host.front() == '[' ||
                          target->host.find_first_not_of("0123456789.") == std::string::npos;
      origin.port = target->port;
      origin.explicit_port = target->explicit_port;
    }
    upstream_path = target->path;
  }

  if (route && route->mcp) {
    if (body_stream) {
      ErrorResponse(res, 415, "invalid_request", "MCP messages are application/json");
      co_return co_await send(kBadRequest);
    }
    co_return co_await HandleMcp(w, client, req, *route, *target);
  }

  // 3. The call: request facts, params from the JSON body and the query, the agent.
  Json params = Json::EmptyObject();
  bool body_is_json = !req.body().empty() && IsJsonType(Header(req, "content-type"));
  if (body_is_json) {
    auto body = common::ParseJson(req.body(), {.max_bytes = config.max_body_bytes, .max_depth = 64});
    if (!body.ok() || !body->is_object()) {
      ErrorResponse(res, 400, "invalid_request",
                    body.ok() ? "a JSON request body must be an object"
                              : StrCat("the JSON body is invalid: ", body.status().message()));
      co_return co_await send(kBadRequest);
    }
    params = *std::move(body);
  }
  // A CONNECT target has no path: the call's path is "/".
  std::string path_and_query = upstream_path.empty() ? std::string("/") : upstream_path;
  if (target->has_query) path_and_query += "?" + target->query;
  Json query = Json::EmptyObject();
  auto normalized = engine::NormalizePath(path_and_query, &query);
  if (!normalized.ok()) {
    ErrorResponse(res, 400, "invalid_request", normalized.status().message());
    co_return co_await send(kBadRequest);
  }
  std::vector<std::string> query_keys;
  for (const auto& [k, v] : query.as_object()) {
    if (params.Find(k)) {
      ErrorResponse(res, 400, "invalid_request",
                    StrCat("parameter \"", k, "\" is both in the query and in the body"));
      co_return co_await send(kBadRequest);
    }
    query_keys.push_back(k);
    params.Set(k, v);
  }
  std::vector<Json::Member> call;
  for (auto [name, key] : {std::pair{"x-aegis-agent", "agent"}, {"x-aegis-tenant", "tenant"}}) {
    std::string_view v = Header(req, name);
    if (!v.empty()) call.push_back({key, Json::String(std::string(v))});
  }
  if (route) {
    call.push_back({"tool", Json::String(route->tool)});
    if (target->form == RequestTarget::Form::kAuthority) {
      call.push_back({"action", Json::String("connect")});
    }
  }
  Json headers = Json::EmptyObject();
  for (const auto& field : req) {
    std::string name = frontdoors::LowerAscii(field.name_string());
    if (!frontdoors::IsCallHeader(name) || name == "host") continue;
    std::string value(field.value());
    if (const Json* prev = headers.Find(name)) value = StrCat(prev->as_string(), ", ", value);
    headers.Set(std::move(name), Json::String(std::move(value)));
  }
  Json request = Json::EmptyObject();
  request.Set("method", Json::String(std::string(req.method_string())));
  request.Set("host", Json::String(route && target->form == RequestTarget::Form::kOrigin
                                       ? PolicyHost(route->upstream)
                                       : target->host));
  request.Set("path", Json::String(target->form == RequestTarget::Form::kAuthority
                                       ? std::string("/")
                                       : path_and_query));
  request.Set("headers", std::move(headers));
  call.push_back({"request", std::move(request)});
  call.push_back({"params", std::move(params)});
  auto object = Json::Object(std::move(call));
  engine::CallParseOptions parse;
  parse.agent_from_token = identity != nullptr;
  auto parsed = object.ok() ? engine::CallFromJson(*std::move(object),
                                                    service::Decider::NowUnixNanos(), parse)
                            : common::StatusOr<engine::CallContext>(object.status());
  if (!parsed.ok()) {
    ErrorResponse(res, 400, "invalid_call", parsed.status().message());
    co_return co_await send(kBadRequest);
  }
  // The agent's token: x-aegis-token, or Proxy-Authorization / Authorization as a Bearer. The
  // agent's Authorization belongs to Aegis on this listener and never goes upstream.
  std::string_view token = Header(req, "x-aegis-token");
  if (token.empty()) token = service::Identity::BearerToken(Header(req, "proxy-authorization"));
  if (token.empty()) token = service::Identity::BearerToken(Header(req, "authorization"));
  std::string_view override_token = Header(req, "x-aegis-override");
  if (identity) {
    common::Status st = identity->ApplyCaller(token, override_token, *parsed);
    if (!st.ok()) {
      bool invalid = st.code() == common::StatusCode::kInvalidArgument;
      ErrorResponse(res, invalid ? 400 : 401, invalid ? "invalid_call" : "unauthenticated",
                    st.message());
      if (!invalid) res.set(http::field::www_authenticate, "Bearer realm=\"aegis\"");
      co_return co_await send(kBadRequest);
    }
  } else if (!token.empty()) {
    ErrorResponse(res, 401, "unauthenticated", "agent tokens are not configured on this gateway");
    co_return co_await send(kBadRequest);
  } else {
    parsed->override_token = std::string(override_token);
  }
  parsed->traceparent = std::string(Header(req, "traceparent"));

  // 4. The decision.
  std::string traceparent;
  engine::Decision d = decider.Decide(*parsed, service::FrontDoor::kProxy, &traceparent);
  policy::Effect effect = d.effective();
  if (effect != policy::Effect::kAllow && effect != policy::Effect::kSanitize) {
    int status = service::Decider::HttpStatus(d);
    res.result(static_cast<unsigned>(status));
    DecisionHeaders(d, res);
    if (status == 429) {
      res.set(http::field::retry_after,
              std::to_string((d.retry_after_nanos + 999'999'999) / 1'000'000'000));
    }
    if (!d.approval_id.empty()) res.set("x-aegis-approval-id", d.approval_id);
    res.set(http::field::content_type, "application/json");
    res.body() = d.ToJson();
    co_return co_await send(kRefused);
  }
  limits::LimitStore* limits = decider.store().limits();
  auto settle = [&](double usd) {
    if (!d.reserved || !limits) return;
    auto micros = static_cast<limits::Micros>(std::llround(usd * 1e6));
    common::Status st = limits->Settle(d.id_view(), micros, service::Decider::NowUnixNanos(),
                                       d.tenant);
    if (!st.ok()) Log("warn", StrCat("proxy: settling decision ", d.id_view(), ": ", st.message()));
  };

  if (target->form == RequestTarget::Form::kAuthority) {
    Count(kForwarded);
    co_return co_await Tunnel(w, client, *target);
  }

  // 5. The upstream request: sanitized where the decision says, the agent's credentials out,
  // the route's credential in.
  std::string body = std::move(req.body());
  std::string raw_query = target->has_query ? target->query : "";
  if (effect == policy::Effect::kSanitize && d.sanitized_params) {
    const Json& clean = *d.sanitized_params;
    bool query_changed = false;
    for (const std::string& k : query_keys) {
      const Json* v = clean.Find(k);
      const Json* before = query.Find(k);
      if (!v || !before || !(*v == *before)) query_changed = true;
    }
    if (query_changed) {
      raw_query.clear();
      for (const std::string& k : query_keys) {
        const Json* v = clean.Find(k);
        if (!v) continue;
        if (!raw_query.empty()) raw_query += '&';
        AppendQueryEncoded(raw_query, k);
        raw_query += '=';
        AppendQueryEncoded(raw_query, QueryValue(*v));
      }
    }
    if (body_is_json) {
      std::vector<Json::Member> members;
      for (const auto& [k, v] : clean.as_object()) {
        if (std::find(query_keys.begin(), query_keys.end(), k) == query_keys.end()) {
          members.push_back({k, v});
        }
      }
      auto rebuilt = Json::Object(std::move(members));
      if (rebuilt.ok()) body = rebuilt->Canonical();
    }
  }
  std::string up_target = upstream_path;
  if (route && !route->credential_query.empty()) {
    if (!raw_query.empty()) raw_query += '&';
    AppendQueryEncoded(raw_query, route->credential_query);
    raw_query += '=';
    AppendQueryEncoded(raw_query, route->credential_value);
  }
  if (!raw_query.empty()) up_target += "?" + raw_query;
  Outgoing out =
      ToUpstream(req, route, origin, up_target, traceparent, std::move(body),
                 client.upstream_head, body_stream);
  // The client's body is streamed after this answer: its connection may go on once it has.
  if (body_stream) keep_alive = req_keep_alive;

  // 6. The exchange. A response nothing needs to read (no redaction, no cost in its JSON) is
  // streamed to the client as it arrives, whatever its size; otherwise it is read whole.
  bool read_whole = route && (route->redact_response || !route->cost_json.empty()) && !body_stream;
  if (!read_whole) {
    auto cost_from_header = [&](const http::fields& fields) {
      if (!route || route->cost_header.empty()) return;
      auto it = fields.find(route->cost_header);
      if (it == fields.end()) return;
      if (auto usd = ParseCost(it->value()); usd && std::isfinite(*usd) && *usd >= 0) settle(*usd);
    };
    InFlight in_flight(*this);
    co_return co_await Relay(w, client, origin, out, nullptr, &d, keep_alive, cost_from_header,
                             body_stream);
  }
  Exchange ex;
  {
    InFlight in_flight(*this);
    ex = co_await Forward(w, origin, out);
  }
  if (ex.error != UpstreamError::kNone) {
    settle(0);  // the call did not happen
    bool timeout = ex.error == UpstreamError::kTimeout;
    Log("warn", StrCat("proxy: decision ", d.id_view(), ": ", ex.message));
    ErrorResponse(res, timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_unavailable",
                  ex.message);
    DecisionHeaders(d, res);
    co_return co_await send(timeout ? kUpstreamTimeout : kUpstreamError);
  }

  // 7. The response: actual cost, redaction, decision headers.
  Response& up_res = ex.response;
  bool json_response = IsJsonType(up_res[http::field::content_type]);
  std::optional<Json> parsed_body;
  if (json_response && (route && (route->redact_response || !route->cost_json.empty()))) {
    auto j = common::ParseJson(up_res.body(), {.max_bytes = config.max_body_bytes, .max_depth = 128});
    if (j.ok()) parsed_body = *std::move(j);
  }
  if (route && !route->cost_header.empty()) {
    auto it = up_res.find(route->cost_header);
    if (it != up_res.end()) {
      if (auto usd = ParseCost(it->value()); usd && std::isfinite(*usd) && *usd >= 0) settle(*usd);
    }
  } else if (route && !route->cost_json.empty() && parsed_body) {
    if (auto usd = CostAt(*parsed_body, route->cost_json); usd && std::isfinite(*usd) && *usd >= 0) {
      settle(*usd);
    }
  }
  if (route && route->redact_response && json_response) {
    if (!parsed_body) {
      // A JSON response that does not parse cannot be checked: it does not pass.
      ErrorResponse(res, 502, "upstream_unavailable",
                    "the upstream's JSON response could not be parsed for redaction");
      DecisionHeaders(d, res);
      co_return co_await send(kUpstreamError);
    }
    auto result = response_redactor.RedactJson(*parsed_body, {});
    if (result.replaced > 0) up_res.body() = parsed_body->Canonical();
  }
  Count(kForwarded);
  // A HEAD answer keeps the upstream's Content-Length: it describes a body it does not send.
  Framing framing;
  if (out.head_request) {
    std::string_view length = up_res[http::field::content_length];
    uint64_t n = 0;
    if (!length.empty() &&
        std::from_chars(length.data(), length.data() + length.size(), n).ec == std::errc()) {
      framing = Framing::Length(n);
    }
  } else if (HasBody(up_res.result_int(), false)) {
    framing = Framing::Length(up_res.body().size());
  }
  client.head.clear();
  AppendResponseHead(client.head, up_res.base(), DecisionFields(d), framing, keep_alive);
  std::array<asio::const_buffer, 2> buffers{
      asio::buffer(client.head), asio::buffer(out.head_request ? std::string_view() : up_res.body())};
  beast::error_code ec;
  client.deadline.After(config.request_timeout);
  ec = co_await WriteAll(client.socket, buffers);
  client.deadline.Never();
  co_return !ec && keep_alive;
}

awaitable<bool> Proxy::Impl::HandleMcp(Worker& w, Client& client, Request& req,
                                       const Route& route, const RequestTarget& target) {
  constexpr int kDoor = static_cast<int>(service::FrontDoor::kMcp);
  bool keep_alive = req.keep_alive();
  Response res;
  res.version(11);
  auto send = [&](Result result) -> awaitable<bool> {
    Count(result);
    if (result == kBadRequest || result == kNoRoute) decider.metrics().RecordBadRequest(kDoor);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    co_return co_await Respond(client, res);
  };
  auto jsonrpc_error = [&](unsigned status, const Json* id, int code,
                           std::string_view message) -> awaitable<bool> {
    res.result(status);
    res.set(http::field::content_type, "application/json");
    res.body() = mcp::ErrorMessage(id, code, message);
    co_return co_await send(kBadRequest);
  };
  // The endpoint: exactly the route's prefix (origin-form), or the server's own URL through
  // HTTP_PROXY (absolute-form).
  bool at_endpoint = target.form == RequestTarget::Form::kOrigin
                         ? target.path == route.prefix || target.path == route.prefix + "/"
                         : target.path == route.upstream.target;
  if (!at_endpoint) {
    ErrorResponse(res, 404, "no_route", "this MCP server is served at its route's prefix only");
    co_return co_await send(kNoRoute);
  }

  // Who is calling: an agent token, or the x-aegis-agent header where tokens are not required.
  std::vector<Json::Member> who;
  for (auto [name, key] : {std::pair{"x-aegis-agent", "agent"}, {"x-aegis-tenant", "tenant"}}) {
    std::string_view v = Header(req, name);
    if (!v.empty()) who.push_back({key, Json::String(std::string(v))});
  }
  who.push_back({"tool", Json::String(route.tool)});
  auto who_json = Json::Object(std::move(who));
  engine::CallParseOptions parse;
  parse.agent_from_token = identity != nullptr;
  auto base = who_json.ok() ? engine::CallFromJson(*std::move(who_json),
                                                   service::Decider::NowUnixNanos(), parse)
                            : common::StatusOr<engine::CallContext>(who_json.status());
  if (!base.ok()) co_return co_await jsonrpc_error(400, nullptr, mcp::kInvalidRequest,
                                                   base.status().message());
  std::string_view token = Header(req, "x-aegis-token");
  if (token.empty()) token = service::Identity::BearerToken(Header(req, "authorization"));
  std::string_view override_token = Header(req, "x-aegis-override");
  if (identity) {
    common::Status st = identity->ApplyCaller(token, override_token, *base);
    if (!st.ok()) {
      bool invalid = st.code() == common::StatusCode::kInvalidArgument;
      if (!invalid) res.set(http::field::www_authenticate, "Bearer realm=\"aegis\"");
      co_return co_await jsonrpc_error(invalid ? 400 : 401, nullptr, mcp::kInvalidRequest,
                                       st.message());
    }
  } else if (!token.empty()) {
    co_return co_await jsonrpc_error(401, nullptr, mcp::kInvalidRequest,
                                     "agent tokens are not configured on this gateway");
  } else {
    base->override_token = std::string(override_token);
  }
  base->traceparent = std::string(Header(req, "traceparent"));

  // A POSTed message: tools/call is decided here, tools/list is remembered to filter its answer.
  std::string body = std::move(req.body());
  std::optional<engine::Decision> decision;
  std::optional<Json> list_id, call_id;
  std::string traceparent;
  if (req.method() == http::verb::post) {
    auto message = common::ParseJson(body, {.max_bytes = config.max_body_bytes, .max_depth = 64});
    if (!message.ok()) {
      co_return co_await jsonrpc_error(400, nullptr, mcp::kParseError,
                                       StrCat("Parse error: ", message.status().message()));
    }
    if (message->is_array()) {
      co_return co_await jsonrpc_error(
          400, nullptr, mcp::kInvalidRequest,
          "JSON-RPC batches are not accepted (MCP 2025-06-18 removed them); send one message");
    }
    const Json* method = message->is_object() ? message->Find("method") : nullptr;
    const Json* id = message->is_object() ? message->Find("id") : nullptr;
    if (method && method->is_string() && method->as_string() == "tools/list" && id) list_id = *id;
    if (method && method->is_string() && method->as_string() == "tools/call") {
      const Json* params = message->Find("params");
      const Json* name = params && params->is_object() ? params->Find("name") : nullptr;
      const Json* arguments = params && params->is_object() ? params->Find("arguments") : nullptr;
      if (!id || !name || !name->is_string() || (arguments && !arguments->is_object())) {
        co_return co_await jsonrpc_error(200, id, mcp::kInvalidParams,
                                         "tools/call needs an id, params.name (a string) and "
                                         "params.arguments (an object, if given)");
      }
      engine::CallContext call = *base;
      call.action = name->as_string();
      if (arguments) call.params = *arguments;
      // The tool name becomes the policy's action name: it must be one.
      auto checked = engine::CallFromJson(
          *Json::Object({{"agent", Json::String(call.agent)},
                         {"tool", Json::String(call.tool)},
                         {"action", Json::String(call.action)}}),
          call.now_unix_nanos, {});
      if (!checked.ok()) {
        co_return co_await jsonrpc_error(200, id, mcp::kInvalidParams,
                                         StrCat("tool name: ", checked.status().message()));
      }
      call_id = *id;
      decision = decider.Decide(call, service::FrontDoor::kMcp, &traceparent);
      const engine::Decision& d = *decision;
      policy::Effect effect = d.effective();
      if (effect != policy::Effect::kAllow && effect != policy::Effect::kSanitize) {
        res.result(http::status::ok);
        DecisionHeaders(d, res);
        if (!d.approval_id.empty()) res.set("x-aegis-approval-id", d.approval_id);
        res.set(http::field::content_type, "application/json");
        res.body() = mcp::RefusalResult(*id, *common::ParseJson(d.ToJson()));
        co_return co_await send(kRefused);
      }
      if (effect == policy::Effect::kSanitize && d.sanitized_params) {
        Json rewritten = *message;
        for (auto& [key, value] : rewritten.mutable_object()) {
          if (key != "params") continue;
          value.Set("arguments", *d.sanitized_params);
        }
        body = rewritten.Canonical();
      }
    }
  }

  std::string up_target = route.upstream.target;
  if (target.has_query) up_target += "?" + target.query;
  Outgoing out = ToUpstream(req, &route, route.upstream, up_target, traceparent, std::move(body),
                            client.upstream_head);
  auto offered = [&](std::string_view tool_name) {
    engine::CallContext call = *base;
    call.action = std::string(tool_name);
    return decider.Offers(call);
  };
  auto transform = [&](Json& message) {
    const Json* id = message.is_object() ? message.Find("id") : nullptr;
    if (!id || message.Find("method")) return false;  // requests and notifications pass
    if (list_id && *id == *list_id) return mcp::FilterTools(message, offered) > 0;
    if (call_id && *id == *call_id && route.redact_results) {
      for (auto& [key, value] : message.mutable_object()) {
        if (key == "result") return response_redactor.RedactJson(value, {}).replaced > 0;
      }
    }
    return false;
  };
  // A GET is the server's event stream, open for the whole session: not a request in flight
  // that a drain should wait for.
  InFlight in_flight(*this, req.method() != http::verb::get);
  co_return co_await Relay(w, client, route.upstream, out, transform,
                           decision ? &*decision : nullptr, keep_alive);
}

namespace {

// Reads the next piece of a message body into the parser's body buffer (set by the caller;
// `buffer_body`): parsed from what `buffer` holds, reading from `stream` only when that gives
// nothing. A body already read with its header, the common case for small answers, takes no trip
// through the scheduler (Beast's async_read_some would post its completion).
template <typename Stream, typename Parser>
awaitable<beast::error_code> ReadBodyPiece(Stream& stream, beast::flat_buffer& buffer, Parser& p) {
  const size_t room = p.get().body().size;
  beast::error_code ec;
  p.eager(true);
  for (;;) {
    if (buffer.size() > 0) {
      size_t used = p.put(buffer.data(), ec);
      buffer.consume(used);
      if (ec == http::error::need_buffer) co_return beast::error_code();  // the piece is full
      if (ec && ec != http::error::need_more) co_return ec;
      ec = {};
      if (p.is_done() || p.get().body().size < room) co_return ec;
      if (used > 0 && buffer.size() > 0) continue;
      if (buffer.size() >= kMaxUnparsedBytes) co_return beast::error_code(http::error::buffer_overflow);
    }
    size_t n = co_await stream.async_read_some(buffer.prepare(beast::read_size(buffer, 65536)),
                                               asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::eof) {
      p.put_eof(ec);  // the end of a body that ends with the connection; else partial_message
      co_return ec;
    }
    if (ec) co_return ec;
    buffer.commit(n);
  }
}

// Reads the rest of a response body into `out`, up to `max` bytes, through `buf`.
template <typename Stream>
awaitable<beast::error_code> ReadWhole(Stream& stream, Upstream& up,
                                       http::response_parser<http::buffer_body>& p,
                                       std::span<char> buf, std::string& out, size_t max) {
  beast::error_code ec;
  while (!p.is_done()) {
    p.get().body().data = buf.data();
    p.get().body().size = buf.size();
    ec = co_await ReadBodyPiece(stream, up.buffer, p);
    if (ec) co_return up.deadline.Why(ec);
    out.append(buf.data(), buf.size() - p.get().body().size);
    if (out.size() > max) co_return beast::error_code(http::error::body_limit);
  }
  co_return ec;
}

// Streams server-sent events to the client as chunks (to an HTTP/1.0 client, unframed: the
// stream ends with the connection), each through `transform`.
template <typename Stream>
awaitable<bool> RelayEvents(Stream& stream, Upstream& up,
                            http::response_parser<http::buffer_body>& p, Client& client,
                            size_t max_event, std::chrono::milliseconds write_timeout,
                            const std::function<bool(Json&)>& transform) {
  mcp::SseSplitter events;
  beast::error_code ec;
  up.deadline.Never();  // a stream may stay quiet for long
  std::string out;
  while (!p.is_done()) {
    p.get().body().data = client.body.data();
    p.get().body().size = client.body.size();
    // Each piece goes on as soon as it arrives: progress notifications are not held back.
    ec = co_await ReadBodyPiece(stream, up.buffer, p);
    if (ec) co_return false;
    std::string_view piece(client.body.data(), client.body.size() - p.get().body().size);
    if (!events.Feed(piece, max_event)) co_return false;
    std::string data;
    while (auto event = events.Next()) {
      if (auto event_data = mcp::EventData(*event)) {
        auto message = common::ParseJson(*event_data, {.max_bytes = max_event, .max_depth = 128});
        if (message.ok() && transform(*message)) {
          *event = mcp::ReplaceEventData(*event, message->Canonical());
        }
      }
      data += *event;
    }
    if (data.empty()) continue;
    out.clear();
    if (client.http11) AppendChunkSize(out, data.size());
    out += data;
    if (client.http11) out += kCrlf;
    client.deadline.After(write_timeout);
    ec = co_await WriteAll(client.socket, asio::buffer(out));
    client.deadline.Never();
    if (ec) co_return false;
  }
  if (!client.http11) co_return true;
  client.deadline.After(write_timeout);
  ec = co_await WriteAll(client.socket, asio::buffer(kLastChunk));
  client.deadline.Never();
  co_return !ec;
}

// Sends `out`'s head (its framing set from the client's), then the body as it arrives from the
// client connection, in the same framing.
// `client_failed` tells an error reading the client (it stopped sending, or too slowly) from one
// writing upstream.
template <typename Stream>
awaitable<beast::error_code> SendStreaming(Stream& stream, const Outgoing& out, BodyStream& body,
                                           Client& client, std::chrono::milliseconds timeout,
                                           bool& client_failed) {
  beast::error_code ec;
  ec = co_await WriteAll(stream, asio::buffer(out.head));
  if (ec) co_return ec;
  const bool chunked = !body.parser.content_length();
  std::string size_line;
  while (!body.parser.is_done()) {
    body.parser.get().body().data = client.body.data();
    body.parser.get().body().size = client.body.size();
    client.deadline.After(timeout);
    ec = co_await ReadBodyPiece(client.socket, body.buffer, body.parser);
    client.deadline.Never();
    if (ec) {
      client_failed = true;
      co_return client.deadline.Why(ec);
    }
    size_t n = client.body.size() - body.parser.get().body().size;
    if (n == 0) continue;
    size_line.clear();
    if (chunked) AppendChunkSize(size_line, n);
    std::array<asio::const_buffer, 3> piece{asio::buffer(size_line),
                                            asio::buffer(client.body.data(), n),
                                            asio::buffer(chunked ? kCrlf : std::string_view())};
    ec = co_await WriteAll(stream, piece);
    if (ec) co_return ec;
  }
  if (chunked) {
    ec = co_await WriteAll(stream, asio::buffer(kLastChunk));
  }
  co_return ec;
}

// Streams a response body to the client as it arrives, after `client.head` (its framing set by
// the caller): no buffering, whatever the size. The head goes out with the first piece of the
// body, in one write: a small answer is one send, not two.
template <typename Stream>
awaitable<bool> StreamRaw(Stream& stream, Upstream& up, http::response_parser<http::buffer_body>& p,
                          Client& client, bool chunked, std::chrono::milliseconds write_timeout) {
  beast::error_code ec;
  bool head_sent = false;
  std::string size_line;
  for (;;) {
    size_t n = 0;
    if (!p.is_done()) {
      p.get().body().data = client.body.data();
      p.get().body().size = client.body.size();
      ec = co_await ReadBodyPiece(stream, up.buffer, p);
      if (ec) co_return false;
      n = client.body.size() - p.get().body().size;
    }
    const bool last = p.is_done();
    size_line.clear();
    if (chunked && n > 0) AppendChunkSize(size_line, n);
    std::string_view tail = chunked ? (last ? (n > 0 ? "\r\n0\r\n\r\n" : kLastChunk)
                                            : (n > 0 ? kCrlf : std::string_view()))
                                    : std::string_view();
    std::array<asio::const_buffer, 4> pieces{
        asio::buffer(head_sent ? std::string_view() : std::string_view(client.head)),
        asio::buffer(size_line), asio::buffer(client.body.data(), n), asio::buffer(tail)};
    if (!head_sent || n > 0 || !tail.empty()) {
      client.deadline.After(write_timeout);
      ec = co_await WriteAll(client.socket, pieces);
      client.deadline.Never();
      if (ec) co_return false;
      head_sent = true;
    }
    if (last) co_return true;
  }
}

}  // namespace

awaitable<bool> Proxy::Impl::Relay(Worker& w, Client& client, const net::Url& origin,
                                   const Outgoing& out, const std::function<bool(Json&)>& transform,
                                   const engine::Decision* d, bool keep_alive,
                                   const std::function<void(const http::fields&)>& on_header,
                                   BodyStream* body_stream) {
  std::unique_ptr<Upstream> up;
  std::optional<http::response_parser<http::buffer_body>> p;
  Exchange ex;
  beast::error_code ec;
  bool client_failed = false;
  bool interim = false;  // the upstream answered something: never retried
  auto fresh = [&](std::optional<http::response_parser<http::buffer_body>>& parser) {
    parser.emplace();
    parser->header_limit(64 * 1024);
    parser->body_limit(std::numeric_limits<std::uint64_t>::max());  // streamed, never held whole
    if (out.head_request) parser->skip(true);
  };
  for (int attempt = 0; attempt < 2; ++attempt) {
    ex = Exchange{};
    up = co_await Acquire(w, origin, ex);
    if (!up) break;
    up->deadline.After(config.upstream_timeout);
    fresh(p);
    // No co_await inside ?: — GCC 12 evaluates the wrong branch's operands there.
    if (up->tls) {
      if (body_stream) {
        ec = co_await SendStreaming(*up->tls, out, *body_stream, client, config.request_timeout,
                                    client_failed);
      } else {
        ec = co_await Send(*up->tls, out);
      }
      if (!ec) ec = co_await ReadFinalHeader(*up->tls, up->buffer, p, fresh, interim);
    } else {
      if (body_stream) {
        ec = co_await SendStreaming(*up->plain, out, *body_stream, client, config.request_timeout,
                                    client_failed);
      } else {
        ec = co_await Send(*up->plain, out);
      }
      if (!ec) ec = co_await ReadFinalHeader(*up->plain, up->buffer, p, fresh, interim);
    }
    if (client_failed) break;
    ec = up->deadline.Why(ec);
    if (!ec && p->get().result_int() == 101) ec = beast::errc::make_error_code(beast::errc::protocol_error);
    if (!ec) break;
    // A streamed body is gone once sent: such a request is never retried.
    bool retry = up->reused && !p->got_some() && !interim && ec != beast::error::timeout &&
                 !body_stream && out.retryable;
    ex.error = ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kIo;
    ex.message = StrCat("exchange with ", origin.Origin(), " failed: ", ec.message());
    up.reset();
    if (!retry) break;
  }
  if (client_failed) {
    // The client stopped sending its body (or sent it too slowly): nobody to answer, and the
    // upstream, which got part of it, did nothing wrong.
    if (d && d->reserved) {
      if (limits::LimitStore* limits = decider.store().limits()) {
        (void)limits->Settle(d->id_view(), 0, service::Decider::NowUnixNanos(), d->tenant);
      }
    }
    Count(kClientAborted);
    co_return false;
  }
  Response res;
  res.version(11);
  // What is left of a streamed body cannot be told from the next request: close after this.
  if (body_stream && !body_stream->parser.is_done()) keep_alive = false;
  if (!up) {
    if (d && d->reserved) {
      if (limits::LimitStore* limits = decider.store().limits()) {
        (void)limits->Settle(d->id_view(), 0, service::Decider::NowUnixNanos(), d->tenant);
      }
    }
    bool timeout = ex.error == UpstreamError::kTimeout;
    Log("warn", StrCat("proxy: ", ex.message));
    ErrorResponse(res, timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_unavailable",
                  ex.message);
    if (d) DecisionHeaders(*d, res);
    Count(timeout ? kUpstreamTimeout : kUpstreamError);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    co_return co_await Respond(client, res);
  }
  Count(kForwarded);
  const auto& head = p->get();
  if (on_header) on_header(head);
  up->check_before_reuse = !HasBody(head.result_int(), out.head_request);
  std::array<Field, 4> decision_fields;
  std::span<const Field> extra;
  if (d) {
    decision_fields = DecisionFields(*d);
    extra = decision_fields;
  }
  client.head.clear();
  if (!transform) {
    // As it comes: the upstream's framing kept (its Content-Length, or chunked). A HEAD answer
    // keeps the upstream's Content-Length: it describes a body it does not send.
    Framing framing;
    if (auto length = p->content_length()) {
      framing = Framing::Length(*length);
    } else if (HasBody(head.result_int(), out.head_request)) {
      if (client.http11) {
        framing = Framing::Chunked();
      } else {
        keep_alive = false;  // the body ends with the connection
      }
    }
    AppendResponseHead(client.head, head, extra, framing, keep_alive);
    bool chunked = framing.kind == Framing::kChunked;
    bool ok;
    if (up->tls) {
      ok = co_await StreamRaw(*up->tls, *up, *p, client, chunked, config.request_timeout);
    } else {
      ok = co_await StreamRaw(*up->plain, *up, *p, client, chunked, config.request_timeout);
    }
    if (ok && p->keep_alive() && out.reusable) Release(w, std::move(up));
    co_return ok && keep_alive;
  }
  std::string_view content_type = head[http::field::content_type];
  if (HasBody(head.result_int(), out.head_request) && content_type.size() >= 17 &&
      beast::iequals(content_type.substr(0, 17), "text/event-stream")) {
    if (!client.http11) keep_alive = false;  // the stream ends with the connection
    AppendResponseHead(client.head, head, extra,
                       client.http11 ? Framing::Chunked() : Framing::None(), keep_alive);
    client.deadline.After(config.request_timeout);
    ec = co_await WriteAll(client.socket, asio::buffer(client.head));
    client.deadline.Never();
    if (ec) co_return false;
    bool ok;
    if (up->tls) {
      ok = co_await RelayEvents(*up->tls, *up, *p, client, config.max_body_bytes,
                                config.request_timeout, transform);
    } else {
      ok = co_await RelayEvents(*up->plain, *up, *p, client, config.max_body_bytes,
                                config.request_timeout, transform);
    }
    if (ok && p->keep_alive() && out.reusable) Release(w, std::move(up));
    co_return ok && keep_alive;
  }
  std::string body;
  // No co_await inside ?: — GCC 12 evaluates the wrong branch's operands there.
  if (up->tls) {
    ec = co_await ReadWhole(*up->tls, *up, *p, client.body, body, config.max_body_bytes);
  } else {
    ec = co_await ReadWhole(*up->plain, *up, *p, client.body, body, config.max_body_bytes);
  }
  if (ec) {
    ErrorResponse(res, 502, "upstream_unavailable",
                  StrCat("reading the MCP server's response failed: ", ec.message()));
    if (d) DecisionHeaders(*d, res);
    res.keep_alive(false);
    res.prepare_payload();
    co_await Respond(client, res);
    co_return false;
  }
  if (p->keep_alive() && out.reusable) Release(w, std::move(up));
  if (IsJsonType(content_type) && !body.empty()) {
    auto message = common::ParseJson(body, {.max_bytes = config.max_body_bytes, .max_depth = 128});
    if (message.ok() && transform(*message)) body = message->Canonical();
  }
  bool has_body = HasBody(head.result_int(), out.head_request);
  AppendResponseHead(client.head, head, extra,
                     has_body ? Framing::Length(body.size()) : Framing::None(), keep_alive);
  std::array<asio::const_buffer, 2> buffers{
      asio::buffer(client.head), asio::buffer(has_body ? std::string_view(body) : std::string_view())};
  client.deadline.After(config.request_timeout);
  ec = co_await WriteAll(client.socket, buffers);
  client.deadline.Never();
  co_return !ec && keep_alive;
}

awaitable<bool> Proxy::Impl::Tunnel(Worker& w, Client& client, const RequestTarget& target) {
  auto executor = co_await asio::this_coro::executor;
  Resolver resolver(executor);
  beast::error_code ec;
  auto endpoints = co_await resolver.async_resolve(DialHost(target.host), std::to_string(target.port),
                                                   asio::redirect_error(use_awaitable, ec));
  Socket upstream(executor);
  if (!ec) {
    Deadlines::Deadline deadline(w.deadlines, &upstream);
    deadline.After(config.connect_timeout);
    co_await asio::async_connect(upstream, endpoints, asio::redirect_error(use_awaitable, ec));
    ec = deadline.Why(ec);
  }
  if (ec) {
    Response res;
    res.version(11);
    ErrorResponse(res, 502, "upstream_unavailable", StrCat("cannot connect: ", ec.message()));
    res.keep_alive(false);
    res.prepare_payload();
    co_await Respond(client, res);
    co_return false;
  }
  static constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection Established\r\n\r\n";
  co_await asio::async_write(client.socket, asio::buffer(kEstablished),
                             asio::redirect_error(use_awaitable, ec));
  if (ec) co_return false;
  // Bytes the client sent after the CONNECT request's header are not expected (it waits for
  // the 200 first); the two directions are then copied until either side ends.
  auto pump = [](Socket& from, Socket& to) -> awaitable<void> {
    std::array<char, 16384> buf;
    beast::error_code e;
    for (;;) {
      size_t n = co_await from.async_read_some(asio::buffer(buf),
                                               asio::redirect_error(use_awaitable, e));
      if (e) break;
      co_await asio::async_write(to, asio::buffer(buf.data(), n),
                                 asio::redirect_error(use_awaitable, e));
      if (e) break;
    }
    beast::error_code ignore;
    to.shutdown(Socket::shutdown_send, ignore);
  };
  Socket& down = client.socket;
  // The upstream-to-client direction runs beside this one; this frame outlives it (it waits
  // for `finished` below), so it may use the frame's sockets.
  bool finished = false;
  Timer done(executor, Timer::time_point::max());
  asio::co_spawn(
      executor,
      [&]() -> awaitable<void> {
        co_await pump(upstream, down);
        finished = true;
        done.cancel();
      },
      asio::detached);
  co_await pump(down, upstream);
  if (!finished) {
    upstream.close(ec);  // ends the other direction's read
    co_await done.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  co_return false;
}

namespace {

// Parses what the client's buffer holds into `parser` and reads more until the header (or the
// whole request) is in: a request already in the buffer, the common case, is parsed without a
// trip through the scheduler (Beast's async_read would post its completion). Errors as Beast's
// reads give them: end_of_stream when the client closed before a byte of the request.
awaitable<beast::error_code> ReadRequest(Client& client,
                                         http::request_parser<http::string_body>& parser,
                                         bool header_only) {
  beast::error_code ec;
  parser.eager(!header_only);
  for (;;) {
    if (client.buffer.size() > 0) {
      size_t used = parser.put(client.buffer.data(), ec);
      client.buffer.consume(used);
      if (ec && ec != http::error::need_more) co_return ec;
      ec = {};
      if (header_only ? parser.is_header_done() : parser.is_done()) co_return ec;
      if (used > 0 && client.buffer.size() > 0) continue;
      // The header's size is Beast's header_limit; within the body, lines waiting for their end.
      if (!header_only && client.buffer.size() >= kMaxUnparsedBytes) {
        co_return beast::error_code(http::error::buffer_overflow);
      }
    }
    size_t n = co_await client.socket.async_read_some(
        client.buffer.prepare(beast::read_size(client.buffer, 65536)),
        asio::redirect_error(use_awaitable, ec));
    if (ec == asio::error::eof) {
      co_return parser.got_some() ? beast::error_code(http::error::partial_message)
                                  : beast::error_code(http::error::end_of_stream);
    }
    if (ec) co_return ec;
    client.buffer.commit(n);
  }
}

}  // namespace

awaitable<void> Proxy::Impl::Serve(Worker& w, Socket socket) {
  struct Counted {
    Impl& impl;
    ~Counted() { impl.connections.fetch_sub(1, std::memory_order_relaxed); }
  } counted{*this};
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  socket.non_blocking(true, ec);  // WriteAll writes what it can at once
  Client client(std::move(socket), w.deadlines);
  beast::flat_buffer& buffer = client.buffer;
  for (;;) {
    if (draining.load()) co_return;
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(config.max_header_bytes));
    // Beast checks Content-Length against the limit with the header; the limit is set once the
    // header says whether the body is read (max_body_bytes) or streamed (none).
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    // Between requests the connection may idle for idle_timeout; from the first byte of a
    // request on, it has request_timeout to arrive whole.
    if (buffer.size() == 0) {
      client.deadline.After(config.idle_timeout);
      size_t n = co_await client.socket.async_read_some(buffer.prepare(beast::read_size(buffer, 65536)),
                                                        asio::redirect_error(use_awaitable, ec));
      if (ec) co_return;  // closed by the client, or idle too long: nothing to answer
      buffer.commit(n);
    }
    client.deadline.After(config.request_timeout);
    ec = co_await ReadRequest(client, parser, /*header_only=*/true);
    ec = client.deadline.Why(ec);
    unsigned refuse = 0;
    if (!ec) {
      // Expect: 100-continue asks before sending the body.
      auto expect = parser.get().find(http::field::expect);
      if (expect != parser.get().end()) {
        if (!beast::iequals(expect->value(), "100-continue")) {
          refuse = 417;
        } else if (!parser.is_done()) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          co_await asio::async_write(client.socket, asio::buffer(kContinue),
                                     asio::redirect_error(use_awaitable, ec));
        }
      }
      // RFC 9112 section 6.3: a request whose transfer codings do not end in chunked has no
      // knowable length; reading on would let the body pass as the next request.
      if (!ec && parser.get().count(http::field::transfer_encoding) > 0 && !parser.chunked()) {
        refuse = 400;
      }
      if (!ec && !refuse && !parser.is_done()) {
        // A body the decision does not read (not JSON) and that is large or chunked goes
        // upstream as it arrives, after the decision, whatever its size.
        const auto& h = parser.get();
        bool unread = !IsJsonType(h[http::field::content_type]) &&
                      (parser.chunked() || parser.content_length().value_or(0) > kStreamBodiesAbove);
        if (!unread) {
          if (parser.content_length().value_or(0) > config.max_body_bytes) {
            ec = http::error::body_limit;
          }
          parser.body_limit(config.max_body_bytes);
        }
        if (unread) {
          client.deadline.Never();
          http::request_parser<http::buffer_body> body_parser{std::move(parser)};
          body_parser.body_limit(std::numeric_limits<std::uint64_t>::max());
          Request head{http::request_header<>(body_parser.get().base())};
          BodyStream stream{body_parser, buffer};
          if (!co_await Handle(w, client, head, &stream)) break;
          continue;
        }
        if (!ec) ec = co_await ReadRequest(client, parser, /*header_only=*/false);
      }
      ec = client.deadline.Why(ec);
      client.deadline.Never();
    }
    if (ec) {
      if (ec == http::error::end_of_stream || !parser.got_some()) co_return;
      refuse = ec == http::error::header_limit ? 431
               : ec == http::error::body_limit ? 413
               : ec == beast::error::timeout   ? 408
                                               : 400;
    }
    if (refuse) {
      Response res;
      res.version(11);
      ErrorResponse(res, refuse, "invalid_request",
                    refuse == 431   ? "the request's header is too large"
                    : refuse == 413 ? "the request's body is larger than max_body_bytes"
                    : refuse == 408 ? "the request did not arrive in time"
                    : refuse == 417 ? "only Expect: 100-continue is understood"
                                    : "the request is not valid HTTP/1.1");
      res.keep_alive(false);
      res.prepare_payload();
      Count(kBadRequest);
      decider.metrics().RecordBadRequest(static_cast<int>(service::FrontDoor::kProxy));
      co_await Respond(client, res);
      break;  // with a lingering close: the client may still be sending what was refused
    }
    Request req = parser.release();
    if (!co_await Handle(w, client, req)) break;
  }
  // Lingering close (as nginx does): the answer is sent, but the client may still be sending a
  // body the proxy did not read (a refused upload); closing now would reset the connection and
  // destroy the answer in the client's buffers. Read and discard for a while first.
  beast::error_code ignore;
  client.socket.shutdown(Socket::shutdown_send, ignore);
  size_t drained = 0;
  client.deadline.After(std::chrono::seconds(2));
  while (drained < (64u << 20)) {
    size_t n = co_await client.socket.async_read_some(asio::buffer(client.body),
                                                      asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    drained += n;
  }
}

awaitable<void> Proxy::Impl::Sweep(Worker& w) {
  Timer tick(w.ioc);
  for (;;) {
    tick.expires_after(sweep_tick);
    beast::error_code ec;
    co_await tick.async_wait(asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    w.deadlines.Expire(Clock::now());
  }
}

awaitable<void> Proxy::Impl::Accept(Worker& w) {
  for (;;) {
    beast::error_code ec;
    Socket socket = co_await w.acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (!w.acceptor.is_open()) co_return;
      continue;  // EMFILE and friends: keep accepting
    }
    if (connections.fetch_add(1, std::memory_order_relaxed) >=
        static_cast<int64_t>(config.max_connections)) {
      connections.fetch_sub(1, std::memory_order_relaxed);
      socket.close(ec);
      continue;
    }
    asio::co_spawn(w.ioc, Serve(w, std::move(socket)), asio::detached);
  }
}

Proxy::Proxy(service::ProxyConfig config, std::vector<Route> routes,
             const service::Decider& decider, const service::Identity* identity, LogFn log)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(routes), decider, identity,
                                   std::move(log))) {}

Proxy::~Proxy() { Stop(std::chrono::milliseconds(0)); }

common::Status Proxy::Start() {
  Impl& m = *impl_;
  std::string host;
  int port = 0;
  if (auto st = net::ParseHostPort(m.config.listen, host, port); !st.ok()) return st;
  beast::error_code ec;
  m.tls.set_verify_mode(ssl::verify_peer);
  m.tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (m.config.ca_file.empty()) {
    m.tls.set_default_verify_paths(ec);
  } else {
    m.tls.load_verify_file(m.config.ca_file, ec);
  }
  if (ec) {
    return common::InvalidArgumentError(
        StrCat("proxy: cannot load CA certificates", m.config.ca_file.empty() ? "" : " from ",
               m.config.ca_file, ": ", ec.message()));
  }
  auto address = asio::ip::make_address(host, ec);
  if (ec) return common::InvalidArgumentError(StrCat("proxy: listen address ", host, " is not an IP"));
  int threads = m.config.threads > 0 ? static_cast<int>(m.config.threads)
                                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // The workers share the port with SO_REUSEPORT — which another process of the same user could
  // join, silently taking part of the traffic (a stale aegis still running, say). A first bind
  // without it fails when anyone already listens there, so aegis never shares its port.
  {
    asio::io_context probe_ioc;
    tcp::acceptor probe(probe_ioc);
    tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    probe.open(endpoint.protocol(), ec);
    if (!ec) probe.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) probe.bind(endpoint, ec);
    if (ec) {
      return common::UnavailableError(
          StrCat("proxy: cannot listen on ", m.config.listen, ": ", ec.message()));
    }
    port = probe.local_endpoint().port();
  }
  for (int i = 0; i < threads; ++i) {
    auto w = std::make_unique<Impl::Worker>();
    tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
    w->acceptor.open(endpoint.protocol(), ec);
    if (!ec) w->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(w->acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        ec = beast::error_code(errno, boost::system::system_category());
      }
    }
    if (!ec) w->acceptor.bind(endpoint, ec);
    if (!ec) w->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return common::UnavailableError(
          StrCat("proxy: cannot listen on ", m.config.listen, ": ", ec.message()));
    }
    m.bound_port = port;
    m.workers.push_back(std::move(w));
  }
  // Timeouts are noticed within a tenth of the shortest (and 10 ms to 100 ms late).
  auto shortest = std::min({m.config.idle_timeout, m.config.request_timeout,
                            m.config.connect_timeout, m.config.upstream_timeout});
  m.sweep_tick = std::clamp<Clock::duration>(shortest / 10, std::chrono::milliseconds(10),
                                             std::chrono::milliseconds(100));
  for (auto& w : m.workers) {
    Impl::Worker* worker = w.get();
    asio::co_spawn(worker->ioc, m.Accept(*worker), asio::detached);
    asio::co_spawn(worker->ioc, m.Sweep(*worker), asio::detached);
    worker->thread = std::thread([worker] { worker->ioc.run(); });
  }
  return common::OkStatus();
}

int Proxy::port() const { return impl_->bound_port; }

void Proxy::Stop(std::chrono::milliseconds drain) {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    if (m.stopped) return;
    m.stopped = true;
  }
  m.draining.store(true);
  for (auto& w : m.workers) {
    asio::post(w->ioc, [worker = w.get()] {
      beast::error_code ec;
      worker->acceptor.close(ec);
    });
  }
  {
    std::unique_lock lock(m.mu);
    m.idle_cv.wait_for(lock, drain, [&] { return m.active.load() == 0; });
  }
  for (auto& w : m.workers) w->ioc.stop();
  for (auto& w : m.workers) {
    if (w->thread.joinable()) w->thread.join();
  }
  m.workers.clear();
}

void Proxy::AppendMetrics(std::string& out) const {
  const Impl& m = *impl_;
  out += "# HELP aegis_proxy_requests_total Proxy requests by what became of them.\n"
         "# TYPE aegis_proxy_requests_total counter\n";
  for (int r = 0; r < kResults; ++r) {
    out += StrCat("aegis_proxy_requests_total{result=\"", kResultNames[r], "\"} ",
                  m.results[r].load(std::memory_order_relaxed), "\n");
  }
  out += "# HELP aegis_proxy_upstream_connections_total Upstream connections used, new or "
         "reused from the pool.\n"
         "# TYPE aegis_proxy_upstream_connections_total counter\n";
  out += StrCat("aegis_proxy_upstream_connections_total{kind=\"new\"} ",
                m.upstream_new.load(std::memory_order_relaxed), "\n");
  out += StrCat("aegis_proxy_upstream_connections_total{kind=\"reused\"} ",
                m.upstream_reused.load(std::memory_order_relaxed), "\n");
  out += "# HELP aegis_proxy_active_requests Requests waiting on an upstream now.\n"
         "# TYPE aegis_proxy_active_requests gauge\n";
  out += StrCat("aegis_proxy_active_requests ", m.active.load(std::memory_order_relaxed), "\n");
}

}  // namespace aegis::proxy
