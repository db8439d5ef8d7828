#include "frontdoors/proxy/proxy.h"

// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
#include <coroutine>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

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
#include "frontdoors/proxy/request_target.h"
#include "net/http_server.h"
#include "redact/redact.h"

namespace aegis::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using asio::use_awaitable;
using common::Json;
using common::StrCat;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

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
  kResults
};
constexpr std::string_view kResultNames[kResults] = {
    "forwarded", "refused", "bad_request", "no_route", "upstream_error", "upstream_timeout"};

// Hop-by-hop headers (RFC 9110 section 7.6.1) and the ones the proxy sets itself.
bool IsHopByHop(std::string_view lower) {
  static constexpr std::string_view kHop[] = {
      "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
      "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"};
  for (std::string_view h : kHop) {
    if (lower == h) return true;
  }
  return false;
}

bool IsJsonType(std::string_view content_type) {
  std::string t = frontdoors::LowerAscii(content_type.substr(0, content_type.find(';')));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  return t == "application/json" || (t.size() > 5 && t.compare(t.size() - 5, 5, "+json") == 0);
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
  std::string origin;  // pool key: "https://host:port"
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;
  bool reused = false;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

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
    asio::io_context ioc{1};
    tcp::acceptor acceptor{ioc};
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
  awaitable<void> Serve(Worker& w, tcp::socket socket);
  // Handles one request and writes its response; returns whether the client connection may
  // serve another request.
  // `body` (optional): the request's body is still on the client connection (see BodyStream).
  awaitable<bool> Handle(Worker& w, beast::tcp_stream& client, Request& req,
                         BodyStream* body = nullptr);
  // CONNECT on a route with tunnel: true, once allowed: a byte pipe to the host.
  awaitable<bool> Tunnel(beast::tcp_stream& client, const RequestTarget& target);
  // A connection to `origin`: pooled, or new (ex tells why there is none).
  awaitable<std::unique_ptr<Upstream>> Acquire(Worker& w, const net::Url& origin, Exchange& ex);
  // Gives a connection whose last exchange ended cleanly back to the pool.
  void Release(Worker& w, std::unique_ptr<Upstream> up);
  // One request and its whole (buffered) response.
  awaitable<Exchange> Forward(Worker& w, const net::Url& origin, Request& upstream_req);
  // An MCP route (docs/mcp.md): decides tools/call, filters tools/list, relays the rest.
  awaitable<bool> HandleMcp(Worker& w, beast::tcp_stream& client, Request& req,
                            const Route& route, const RequestTarget& target);
  // Sends `req` and streams the response to the client; each JSON-RPC message in it (a JSON
  // body or server-sent events) goes through `transform`, which returns whether it changed it.
  // Without a transform the body is streamed as it comes, whatever its size. `on_header`
  // (optional) sees the upstream's response header first (the actual cost).
  awaitable<bool> Relay(Worker& w, beast::tcp_stream& client, const net::Url& origin,
                        Request& req, const std::function<bool(Json&)>& transform,
                        const engine::Decision* d, bool keep_alive,
                        const std::function<void(const http::fields&)>& on_header = nullptr,
                        BodyStream* body_stream = nullptr);
  awaitable<std::unique_ptr<Upstream>> Connect(const net::Url& origin, Exchange& ex);

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

void DecisionHeaders(const engine::Decision& d, Response& res) {
  res.set("x-aegis-decision", std::string(policy::EffectName(d.outcome)));
  res.set("x-aegis-decision-id", std::string(d.id_view()));
  res.set("x-aegis-policy-version", d.policy->version);
  res.set("x-aegis-enforced", d.enforced() ? "true" : "false");
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

// Edits the agent's request in place into the upstream's: target, Host, the route's credential
// (a header of the same name from the agent dropped), the decision's traceparent, `body` with
// its length; hop-by-hop headers (and those Connection names), Authorization,
// Proxy-Authorization, Expect and every x-aegis-* header removed.
void RewriteForUpstream(Request& req, const Route* route, const net::Url& origin,
                        const std::string& up_target, const std::string& traceparent,
                        std::string body) {
  // Headers named in Connection are hop-by-hop too.
  std::vector<std::string> connection_named;
  if (auto c = Header(req, "connection"); !c.empty()) {
    size_t pos = 0;
    while (pos < c.size()) {
      size_t comma = c.find(',', pos);
      std::string_view token_name =
          c.substr(pos, comma == std::string_view::npos ? comma : comma - pos);
      while (!token_name.empty() && token_name.front() == ' ') token_name.remove_prefix(1);
      while (!token_name.empty() && token_name.back() == ' ') token_name.remove_suffix(1);
      if (!token_name.empty()) connection_named.push_back(frontdoors::LowerAscii(token_name));
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
  }
  std::string incoming_trace(Header(req, "traceparent"));
  bool had_body = !body.empty() || req.has_content_length() || req.chunked();
  for (auto it = req.begin(); it != req.end();) {
    std::string name = frontdoors::LowerAscii(it->name_string());
    bool drop = IsHopByHop(name) || name == "host" || name == "authorization" ||
                name == "content-length" || name == "expect" || name == "traceparent" ||
                name.rfind("x-aegis-", 0) == 0 || (route && name == route->credential_header) ||
                std::find(connection_named.begin(), connection_named.end(), name) !=
                    connection_named.end();
    it = drop ? req.erase(it) : std::next(it);
  }
  req.target(up_target);
  req.version(11);
  req.set(http::field::host, origin.HostHeader());
  if (route && !route->credential_header.empty()) {
    req.set(route->credential_header, route->credential_value);
  }
  if (!traceparent.empty()) {
    req.set("traceparent", traceparent);
  } else if (!incoming_trace.empty()) {
    req.set("traceparent", incoming_trace);
  }
  req.keep_alive(true);
  req.body() = std::move(body);
  if (had_body) req.prepare_payload();
}

template <typename Stream>
awaitable<void> ReadResponse(Stream& stream, Upstream& up, bool head, size_t max_body,
                             Exchange& ex) {
  http::response_parser<http::string_body> parser;
  parser.header_limit(64 * 1024);
  parser.body_limit(max_body);
  if (head) parser.skip(true);
  beast::error_code ec;
  co_await http::async_read_header(stream, up.buffer, parser,
                                   asio::redirect_error(use_awaitable, ec));
  if (!ec && !parser.is_done()) {
    co_await http::async_read(stream, up.buffer, parser, asio::redirect_error(use_awaitable, ec));
  }
  if (ec) {
    ex.wrote_nothing = !parser.got_some();
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

awaitable<std::unique_ptr<Upstream>> Proxy::Impl::Connect(const net::Url& origin, Exchange& ex) {
  auto up = std::make_unique<Upstream>();
  up->origin = origin.Origin();
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  beast::error_code ec;
  auto endpoints = co_await resolver.async_resolve(origin.host, std::to_string(origin.port),
                                                   asio::redirect_error(use_awaitable, ec));
  if (ec) {
    ex.error = UpstreamError::kConnect;
    ex.message = StrCat("cannot resolve ", origin.Origin(), ": ", ec.message());
    co_return nullptr;
  }
  beast::tcp_stream stream(executor);
  stream.expires_after(config.connect_timeout);
  co_await stream.async_connect(endpoints, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    ex.error = ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kConnect;
    ex.message = StrCat("cannot connect to ", origin.Origin(), ": ", ec.message());
    co_return nullptr;
  }
  stream.socket().set_option(tcp::no_delay(true), ec);
  if (!origin.tls) {
    up->plain = std::make_unique<beast::tcp_stream>(std::move(stream));
    co_return up;
  }
  up->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(stream), tls);
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
  beast::get_lowest_layer(*up->tls).expires_after(config.connect_timeout);
  co_await up->tls->async_handshake(ssl::stream_base::client,
                                    asio::redirect_error(use_awaitable, ec));
  if (ec) {
    ex.error = ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kTls;
    ex.message = StrCat("TLS with ", origin.Origin(), " failed: ", ec.message());
    co_return nullptr;
  }
  co_return up;
}

awaitable<std::unique_ptr<Upstream>> Proxy::Impl::Acquire(Worker& w, const net::Url& origin,
                                                          Exchange& ex) {
  std::unique_ptr<Upstream> up;
  // A pooled connection first (the most recent, least likely closed by the upstream).
  auto& pool = w.idle[origin.Origin()];
  while (!pool.empty() && !up) {
    up = std::move(pool.back());
    pool.pop_back();
    if (Clock::now() - up->idle_since > config.idle_timeout) up.reset();
  }
  if (up) {
    up->reused = true;
    upstream_reused.fetch_add(1, std::memory_order_relaxed);
    co_return up;
  }
  up = co_await Connect(origin, ex);
  if (up) upstream_new.fetch_add(1, std::memory_order_relaxed);
  co_return up;
}

void Proxy::Impl::Release(Worker& w, std::unique_ptr<Upstream> up) {
  auto& pool = w.idle[up->origin];
  if (pool.size() >= config.max_idle_per_upstream || draining.load()) return;
  up->idle_since = Clock::now();
  up->lowest().expires_never();
  pool.push_back(std::move(up));
}

awaitable<Exchange> Proxy::Impl::Forward(Worker& w, const net::Url& origin, Request& req) {
  bool head = req.method() == http::verb::head;
  for (int attempt = 0;; ++attempt) {
    Exchange ex;
    std::unique_ptr<Upstream> up = co_await Acquire(w, origin, ex);
    if (!up) co_return ex;
    beast::error_code ec;
    up->lowest().expires_after(config.upstream_timeout);
    if (up->tls) {
      co_await http::async_write(*up->tls, req, asio::redirect_error(use_awaitable, ec));
    } else {
      co_await http::async_write(*up->plain, req, asio::redirect_error(use_awaitable, ec));
    }
    if (ec) {
      ex.wrote_nothing = true;
      ex.error = ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kIo;
      ex.message = StrCat("sending to ", origin.Origin(), " failed: ", ec.message());
    } else if (up->tls) {
      co_await ReadResponse(*up->tls, *up, head, config.max_body_bytes, ex);
    } else {
      co_await ReadResponse(*up->plain, *up, head, config.max_body_bytes, ex);
    }
    // A kept-alive connection the upstream had closed fails before any answer: try once more
    // on a new one. Nothing reached the upstream's application in that case.
    if (ex.error != UpstreamError::kNone) {
      if (up->reused && ex.wrote_nothing && ex.error == UpstreamError::kIo && attempt == 0) {
        continue;
      }
      co_return ex;
    }
    if (ex.response.keep_alive()) Release(w, std::move(up));
    co_return ex;
  }
}

awaitable<bool> Proxy::Impl::Handle(Worker& w, beast::tcp_stream& client, Request& req,
                                    BodyStream* body_stream) {
  Response res;
  res.version(11);
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
    beast::error_code ec;
    client.expires_after(config.request_timeout);
    co_await http::async_write(client, res, asio::redirect_error(use_awaitable, ec));
    co_return !ec && keep_alive;
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
  call.push_back({"params", params});
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
    co_return co_await Tunnel(client, *target);
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
  // The request is edited in place into the upstream's: fewer copies on the hot path.
  std::string up_target = upstream_path;
  if (route && !route->credential_query.empty()) {
    if (!raw_query.empty()) raw_query += '&';
    AppendQueryEncoded(raw_query, route->credential_query);
    raw_query += '=';
    AppendQueryEncoded(raw_query, route->credential_value);
  }
  if (!raw_query.empty()) up_target += "?" + raw_query;
  RewriteForUpstream(req, route, origin, up_target, traceparent, std::move(body));
  if (body_stream) {
    // The client's framing, for the body that follows.
    if (auto length = body_stream->parser.content_length()) {
      req.content_length(*length);
    } else {
      req.erase(http::field::content_length);
      req.chunked(true);
    }
    keep_alive = req_keep_alive;
  }

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
    co_return co_await Relay(w, client, origin, req, nullptr, &d, keep_alive, cost_from_header,
                             body_stream);
  }
  Exchange ex;
  {
    InFlight in_flight(*this);
    ex = co_await Forward(w, origin, req);
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
  // The upstream's response is edited in place into the client's.
  std::string head_length;
  if (auto it = up_res.find(http::field::content_length); it != up_res.end()) {
    head_length = std::string(it->value());
  }
  for (auto it = up_res.begin(); it != up_res.end();) {
    std::string name = frontdoors::LowerAscii(it->name_string());
    it = IsHopByHop(name) || name == "content-length" || name.rfind("x-aegis-", 0) == 0
             ? up_res.erase(it)
             : std::next(it);
  }
  DecisionHeaders(d, up_res);
  Count(kForwarded);
  up_res.keep_alive(keep_alive);
  beast::error_code ec;
  client.expires_after(config.request_timeout);
  if (req.method() == http::verb::head) {
    // Keep the upstream's Content-Length: a HEAD answer describes a body it does not send.
    if (!head_length.empty()) up_res.set(http::field::content_length, head_length);
    http::response_serializer<http::string_body> sr(up_res);
    co_await http::async_write_header(client, sr, asio::redirect_error(use_awaitable, ec));
  } else {
    int status = up_res.result_int();
    if (status >= 200 && status != 204 && status != 304) up_res.prepare_payload();
    co_await http::async_write(client, up_res, asio::redirect_error(use_awaitable, ec));
  }
  co_return !ec && keep_alive;
}

awaitable<bool> Proxy::Impl::HandleMcp(Worker& w, beast::tcp_stream& client, Request& req,
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
    beast::error_code ec;
    client.expires_after(config.request_timeout);
    co_await http::async_write(client, res, asio::redirect_error(use_awaitable, ec));
    co_return !ec && keep_alive;
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
  RewriteForUpstream(req, &route, route.upstream, up_target, traceparent, std::move(body));
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
  co_return co_await Relay(w, client, route.upstream, req, transform,
                           decision ? &*decision : nullptr, keep_alive);
}

namespace {

// Reads the rest of a response body into `out`, up to `max` bytes.
template <typename Stream>
awaitable<beast::error_code> ReadWhole(Stream& stream, Upstream& up,
                                       http::response_parser<http::buffer_body>& p,
                                       std::string& out, size_t max) {
  std::array<char, 16384> buf;
  beast::error_code ec;
  while (!p.is_done()) {
    p.get().body().data = buf.data();
    p.get().body().size = buf.size();
    co_await http::async_read(stream, up.buffer, p, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return ec;
    out.append(buf.data(), buf.size() - p.get().body().size);
    if (out.size() > max) co_return beast::error_code(http::error::body_limit);
  }
  co_return ec;
}

// Streams server-sent events to the client as chunks, each through `transform`.
template <typename Stream>
awaitable<bool> RelayEvents(Stream& stream, Upstream& up,
                            http::response_parser<http::buffer_body>& p,
                            beast::tcp_stream& client, size_t max_event,
                            std::chrono::milliseconds write_timeout,
                            const std::function<bool(Json&)>& transform) {
  std::array<char, 16384> buf;
  mcp::SseSplitter events;
  beast::error_code ec;
  while (!p.is_done()) {
    p.get().body().data = buf.data();
    p.get().body().size = buf.size();
    up.lowest().expires_never();  // a stream may stay quiet for long
    // read_some: each piece goes on as soon as it arrives (async_read would wait for a full
    // buffer, holding back progress notifications).
    co_await http::async_read_some(stream, up.buffer, p, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return false;
    if (!events.Feed(std::string_view(buf.data(), buf.size() - p.get().body().size), max_event)) {
      co_return false;
    }
    std::string out;
    while (auto event = events.Next()) {
      if (auto data = mcp::EventData(*event)) {
        auto message = common::ParseJson(*data, {.max_bytes = max_event, .max_depth = 128});
        if (message.ok() && transform(*message)) {
          *event = mcp::ReplaceEventData(*event, message->Canonical());
        }
      }
      out += *event;
    }
    if (out.empty()) continue;
    client.expires_after(write_timeout);
    co_await asio::async_write(client, http::make_chunk(asio::buffer(out)),
                               asio::redirect_error(use_awaitable, ec));
    client.expires_never();
    if (ec) co_return false;
  }
  client.expires_after(write_timeout);
  co_await asio::async_write(client, http::make_chunk_last(),
                             asio::redirect_error(use_awaitable, ec));
  co_return !ec;
}

template <typename Stream>
awaitable<beast::error_code> SendWhole(Stream& stream, Request& req) {
  beast::error_code ec;
  co_await http::async_write(stream, req, asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

// Sends `req`'s header (its framing set by the caller), then the body as it arrives from the
// client connection.
template <typename Stream>
awaitable<beast::error_code> SendStreaming(Stream& stream, Request& req, BodyStream& body,
                                           beast::tcp_stream& client,
                                           std::chrono::milliseconds timeout) {
  http::request<http::buffer_body> out{http::request_header<>(req.base())};
  http::request_serializer<http::buffer_body> sr(out);
  beast::error_code ec;
  out.body().data = nullptr;
  out.body().more = !body.parser.is_done();
  co_await http::async_write_header(stream, sr, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return ec;
  std::array<char, 16384> buf;
  while (!body.parser.is_done()) {
    body.parser.get().body().data = buf.data();
    body.parser.get().body().size = buf.size();
    client.expires_after(timeout);
    co_await http::async_read_some(client, body.buffer, body.parser,
                                   asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return ec;
    out.body().data = buf.data();
    out.body().size = buf.size() - body.parser.get().body().size;
    out.body().more = !body.parser.is_done();
    co_await http::async_write(stream, sr, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return ec;
  }
  if (!sr.is_done()) {
    out.body().data = nullptr;
    out.body().size = 0;
    out.body().more = false;
    co_await http::async_write(stream, sr, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
  }
  co_return ec;
}

// Streams a response body to the client as it arrives, under `head` (its framing set by the
// caller): no buffering, whatever the size. The header goes out with the first piece of the body,
// in one write: a small answer is one send, not two.
template <typename Stream>
awaitable<bool> StreamRaw(Stream& stream, Upstream& up, http::response_parser<http::buffer_body>& p,
                          beast::tcp_stream& client, http::response<http::empty_body>& head,
                          std::chrono::milliseconds write_timeout) {
  http::response<http::buffer_body> out{std::move(head)};
  http::response_serializer<http::buffer_body> sr(out);
  beast::error_code ec;
  std::array<char, 16384> buf;
  while (!sr.is_done()) {
    size_t n = 0;
    if (!p.is_done()) {
      p.get().body().data = buf.data();
      p.get().body().size = buf.size();
      co_await http::async_read_some(stream, up.buffer, p, asio::redirect_error(use_awaitable, ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return false;
      n = buf.size() - p.get().body().size;
    }
    out.body().data = n > 0 ? buf.data() : nullptr;
    out.body().size = n;
    out.body().more = !p.is_done();
    client.expires_after(write_timeout);
    co_await http::async_write(client, sr, asio::redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};
    if (ec) co_return false;
  }
  co_return true;
}

}  // namespace

awaitable<bool> Proxy::Impl::Relay(Worker& w, beast::tcp_stream& client, const net::Url& origin,
                                   Request& req, const std::function<bool(Json&)>& transform,
                                   const engine::Decision* d, bool keep_alive,
                                   const std::function<void(const http::fields&)>& on_header,
                                   BodyStream* body_stream) {
  bool head_request = req.method() == http::verb::head;
  std::unique_ptr<Upstream> up;
  std::optional<http::response_parser<http::buffer_body>> p;
  Exchange ex;
  beast::error_code ec;
  for (int attempt = 0; attempt < 2; ++attempt) {
    ex = Exchange{};
    up = co_await Acquire(w, origin, ex);
    if (!up) break;
    up->lowest().expires_after(config.upstream_timeout);
    p.emplace();
    p->header_limit(64 * 1024);
    p->body_limit(std::numeric_limits<std::uint64_t>::max());  // streamed, never held whole
    if (head_request) p->skip(true);
    if (up->tls) {
      if (body_stream) {
        ec = co_await SendStreaming(*up->tls, req, *body_stream, client, config.request_timeout);
      } else {
        ec = co_await SendWhole(*up->tls, req);
      }
      if (!ec) {
        co_await http::async_read_header(*up->tls, up->buffer, *p,
                                         asio::redirect_error(use_awaitable, ec));
      }
    } else {
      if (body_stream) {
        ec = co_await SendStreaming(*up->plain, req, *body_stream, client, config.request_timeout);
      } else {
        ec = co_await SendWhole(*up->plain, req);
      }
      if (!ec) {
        co_await http::async_read_header(*up->plain, up->buffer, *p,
                                         asio::redirect_error(use_awaitable, ec));
      }
    }
    if (!ec) break;
    // A streamed body is gone once sent: such a request is never retried.
    bool retry = up->reused && !p->got_some() && ec != beast::error::timeout && !body_stream;
    ex.error = ec == beast::error::timeout ? UpstreamError::kTimeout : UpstreamError::kIo;
    ex.message = StrCat("exchange with ", origin.Origin(), " failed: ", ec.message());
    up.reset();
    if (!retry) break;
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
    Log("warn", StrCat("proxy: mcp: ", ex.message));
    ErrorResponse(res, timeout ? 504 : 502, timeout ? "upstream_timeout" : "upstream_unavailable",
                  ex.message);
    if (d) DecisionHeaders(*d, res);
    Count(timeout ? kUpstreamTimeout : kUpstreamError);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    client.expires_after(config.request_timeout);
    co_await http::async_write(client, res, asio::redirect_error(use_awaitable, ec));
    co_return !ec && keep_alive;
  }
  Count(kForwarded);
  const auto& head = p->get();
  if (on_header) on_header(head);
  std::string content_type(head[http::field::content_type]);
  bool sse = frontdoors::LowerAscii(content_type).rfind("text/event-stream", 0) == 0;
  // The response header for the client: the upstream's, less hop-by-hop, plus the decision's.
  http::response<http::empty_body> out_head;
  out_head.version(11);
  out_head.result(head.result_int());
  out_head.reason(head.reason());
  for (const auto& field : head) {
    std::string name = frontdoors::LowerAscii(field.name_string());
    if (IsHopByHop(name) || name == "content-length" || name.rfind("x-aegis-", 0) == 0) continue;
    out_head.insert(field.name_string(), field.value());
  }
  if (d) {
    out_head.set("x-aegis-decision", std::string(policy::EffectName(d->outcome)));
    out_head.set("x-aegis-decision-id", std::string(d->id_view()));
    out_head.set("x-aegis-policy-version", d->policy->version);
  }
  if (!transform) {
    // As it comes: the upstream's framing kept (its Content-Length, or chunked).
    if (auto length = p->content_length()) {
      out_head.content_length(*length);
    } else if (!head_request && head.result_int() >= 200 && head.result_int() != 204 &&
               head.result_int() != 304) {
      out_head.chunked(true);
    }
    if (head_request) {
      if (auto it = head.find(http::field::content_length); it != head.end()) {
        out_head.set(http::field::content_length, it->value());
      }
    }
    out_head.keep_alive(keep_alive);
    bool ok;
    if (up->tls) {
      ok = co_await StreamRaw(*up->tls, *up, *p, client, out_head, config.request_timeout);
    } else {
      ok = co_await StreamRaw(*up->plain, *up, *p, client, out_head, config.request_timeout);
    }
    if (ok && p->keep_alive()) Release(w, std::move(up));
    co_return ok && keep_alive;
  }
  if (sse) {
    out_head.chunked(true);
    out_head.keep_alive(keep_alive);
    http::response_serializer<http::empty_body> sr(out_head);
    client.expires_after(config.request_timeout);
    co_await http::async_write_header(client, sr, asio::redirect_error(use_awaitable, ec));
    client.expires_never();
    if (ec) co_return false;
    bool ok;
    if (up->tls) {
      ok = co_await RelayEvents(*up->tls, *up, *p, client, config.max_body_bytes,
                                config.request_timeout, transform);
    } else {
      ok = co_await RelayEvents(*up->plain, *up, *p, client, config.max_body_bytes,
                                config.request_timeout, transform);
    }
    if (ok && p->keep_alive()) Release(w, std::move(up));
    co_return ok && keep_alive;
  }
  std::string body;
  // No co_await inside ?: — GCC 12 evaluates the wrong branch's operands there.
  if (up->tls) {
    ec = co_await ReadWhole(*up->tls, *up, *p, body, config.max_body_bytes);
  } else {
    ec = co_await ReadWhole(*up->plain, *up, *p, body, config.max_body_bytes);
  }
  if (ec) {
    ErrorResponse(res, 502, "upstream_unavailable",
                  StrCat("reading the MCP server's response failed: ", ec.message()));
    if (d) DecisionHeaders(*d, res);
    res.keep_alive(false);
    res.prepare_payload();
    co_await http::async_write(client, res, asio::redirect_error(use_awaitable, ec));
    co_return false;
  }
  if (p->keep_alive()) Release(w, std::move(up));
  if (IsJsonType(content_type) && !body.empty()) {
    auto message = common::ParseJson(body, {.max_bytes = config.max_body_bytes, .max_depth = 128});
    if (message.ok() && transform(*message)) body = message->Canonical();
  }
  res.result(out_head.result_int());
  res.reason(out_head.reason());
  for (const auto& field : out_head) res.insert(field.name_string(), field.value());
  res.body() = std::move(body);
  res.keep_alive(keep_alive);
  int status = res.result_int();
  if (status >= 200 && status != 204 && status != 304) res.prepare_payload();
  client.expires_after(config.request_timeout);
  co_await http::async_write(client, res, asio::redirect_error(use_awaitable, ec));
  co_return !ec && keep_alive;
}

awaitable<bool> Proxy::Impl::Tunnel(beast::tcp_stream& client, const RequestTarget& target) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  beast::error_code ec;
  auto endpoints = co_await resolver.async_resolve(DialHost(target.host), std::to_string(target.port),
                                                   asio::redirect_error(use_awaitable, ec));
  tcp::socket upstream(executor);
  if (!ec) {
    beast::tcp_stream s(executor);
    s.expires_after(config.connect_timeout);
    co_await s.async_connect(endpoints, asio::redirect_error(use_awaitable, ec));
    if (!ec) upstream = s.release_socket();
  }
  if (ec) {
    Response res;
    res.version(11);
    ErrorResponse(res, 502, "upstream_unavailable", StrCat("cannot connect: ", ec.message()));
    res.keep_alive(false);
    res.prepare_payload();
    co_await http::async_write(client, res, asio::redirect_error(use_awaitable, ec));
    co_return false;
  }
  static constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection Established\r\n\r\n";
  client.expires_never();
  co_await asio::async_write(client.socket(), asio::buffer(kEstablished),
                             asio::redirect_error(use_awaitable, ec));
  if (ec) co_return false;
  // Bytes the client sent after the CONNECT request's header are not expected (it waits for
  // the 200 first); the two directions are then copied until either side ends.
  auto pump = [](tcp::socket& from, tcp::socket& to) -> awaitable<void> {
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
    to.shutdown(tcp::socket::shutdown_send, ignore);
  };
  tcp::socket& down = client.socket();
  // The upstream-to-client direction runs beside this one; this frame outlives it (it waits
  // for `finished` below), so it may use the frame's sockets.
  bool finished = false;
  asio::steady_timer done(executor, asio::steady_timer::time_point::max());
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

awaitable<void> Proxy::Impl::Serve(Worker& w, tcp::socket socket) {
  struct Counted {
    Impl& impl;
    ~Counted() { impl.connections.fetch_sub(1, std::memory_order_relaxed); }
  } counted{*this};
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  beast::tcp_stream client(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    if (draining.load()) co_return;
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<uint32_t>(config.max_header_bytes));
    // Beast checks Content-Length against the limit with the header; the limit is set once the
    // header says whether the body is read (max_body_bytes) or streamed (none).
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    client.expires_after(buffer.size() > 0 ? config.request_timeout : config.idle_timeout);
    co_await http::async_read_header(client, buffer, parser, asio::redirect_error(use_awaitable, ec));
    unsigned refuse = 0;
    if (!ec) {
      // Expect: 100-continue asks before sending the body.
      auto expect = parser.get().find(http::field::expect);
      if (expect != parser.get().end()) {
        if (!beast::iequals(expect->value(), "100-continue")) {
          refuse = 417;
        } else if (!parser.is_done()) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          co_await asio::async_write(client, asio::buffer(kContinue),
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
          http::request_parser<http::buffer_body> body_parser{std::move(parser)};
          body_parser.body_limit(std::numeric_limits<std::uint64_t>::max());
          Request head{http::request_header<>(body_parser.get().base())};
          BodyStream stream{body_parser, buffer};
          if (!co_await Handle(w, client, head, &stream)) break;
          continue;
        }
        if (!ec) {
          client.expires_after(config.request_timeout);
          co_await http::async_read(client, buffer, parser,
                                    asio::redirect_error(use_awaitable, ec));
        }
      }
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
      client.expires_after(config.request_timeout);
      co_await http::async_write(client, res, asio::redirect_error(use_awaitable, ec));
      co_return;
    }
    Request req = parser.release();
    if (!co_await Handle(w, client, req)) break;
  }
  // Lingering close (as nginx does): the answer is sent, but the client may still be sending a
  // body the proxy did not read (a refused upload); closing now would reset the connection and
  // destroy the answer in the client's buffers. Read and discard for a while first.
  beast::error_code ignore;
  client.socket().shutdown(tcp::socket::shutdown_send, ignore);
  std::array<char, 16384> discard;
  size_t drained = 0;
  client.expires_after(std::chrono::seconds(2));
  while (drained < (64u << 20)) {
    size_t n = co_await client.async_read_some(asio::buffer(discard),
                                               asio::redirect_error(use_awaitable, ec));
    if (ec) break;
    drained += n;
  }
}

awaitable<void> Proxy::Impl::Accept(Worker& w) {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket = co_await w.acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
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
  for (auto& w : m.workers) {
    Impl::Worker* worker = w.get();
    asio::co_spawn(worker->ioc, m.Accept(*worker), asio::detached);
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
