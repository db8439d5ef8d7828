// extauthz_client: a small Envoy-like client of envoy.service.auth.v3.Authorization/Check, for
// integration tests and the ext_authz benchmark. It builds CheckRequests the way Envoy's ext_authz
// filter does (HttpRequest fields plus the pseudo-headers in the header map) from flags or JSON.
//
//   extauthz_client check  [request flags]      one Check; prints the answer as JSON
//   extauthz_client load   [request flags] [--concurrency N] [--connections C]
//                          [--duration S | --requests N] [--warmup S] [--rate R]
//   extauthz_client health [--addr A] [--service S]
//
// Request flags: --addr HOST:PORT (127.0.0.1:9191), --method M (GET), --host H, --path P (/),
// --header 'name: value' (repeatable), --body TEXT | --body-file FILE (content-type
// application/json unless a --header sets it), --ext key=value (context extension, repeatable),
// --principal P (source peer), --no-pseudo-headers, --timeout-ms T (5000), or --json TEXT|@FILE
// with {"method", "host", "path", "headers": {...}, "body", "context_extensions": {...},
// "principal"} (flags given after --json override it).
//
// Exit status: check: 0 allowed (CheckResponse status OK), 1 refused (any other status), 2 bad
// usage, 3 the gRPC call itself failed. health: 0 SERVING, 1 otherwise, 3 call failed. load: 0,
// or 3 when no call succeeded.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/json.h"
#include "envoy/service/auth/v3/external_auth.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace {

namespace authv3 = ::envoy::service::auth::v3;
using aegis::common::AppendJsonString;
using aegis::common::Json;
using Clock = std::chrono::steady_clock;

constexpr int kExitAllowed = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitTransport = 3;

[[noreturn]] void Usage(const std::string& message) {
  std::cerr << "extauthz_client: " << message
            << "\nusage: extauthz_client check|load|health [flags] (see the source's header)\n";
  std::exit(kExitUsage);
}

struct Options {
  std::string mode;
  std::string addr = "127.0.0.1:9191";
  std::string method = "GET";
  std::string host;
  std::string path = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool has_body = false;
  std::vector<std::pair<std::string, std::string>> extensions;
  std::string principal;
  bool pseudo_headers = true;
  int timeout_ms = 5000;
  // load
  int concurrency = 16;
  int connections = 1;
  double duration_s = 5;
  int64_t requests = 0;  // 0: run for duration_s
  double warmup_s = 0;
  double rate = 0;  // 0: closed loop
  // health
  std::string service;
};

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Usage("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

void ApplyJson(const std::string& arg, Options& o) {
  std::string text = !arg.empty() && arg[0] == '@' ? ReadFileOrDie(arg.substr(1)) : arg;
  auto json = aegis::common::ParseJson(text);
  if (!json.ok()) Usage("--json: " + json.status().message());
  if (!json->is_object()) Usage("--json must be an object");
  auto need_string = [](const std::string& key, const Json& v) -> const std::string& {
    if (!v.is_string()) Usage("--json: " + key + " must be a string");
    return v.as_string();
  };
  auto string_map = [&](const std::string& key, const Json& v,
                        std::vector<std::pair<std::string, std::string>>& out) {
    if (!v.is_object()) Usage("--json: " + key + " must be an object");
    for (const auto& m : v.as_object()) out.emplace_back(m.key, need_string(key, m.value));
  };
  for (const auto& m : json->as_object()) {
    if (m.key == "method") {
      o.method = need_string(m.key, m.value);
    } else if (m.key == "host") {
      o.host = need_string(m.key, m.value);
    } else if (m.key == "path") {
      o.path = need_string(m.key, m.value);
    } else if (m.key == "headers") {
      string_map(m.key, m.value, o.headers);
    } else if (m.key == "body") {
      // A string is sent as is; anything else is sent as its JSON text.
      o.body = m.value.is_string() ? m.value.as_string() : m.value.Canonical();
      o.has_body = true;
    } else if (m.key == "context_extensions") {
      string_map(m.key, m.value, o.extensions);
    } else if (m.key == "principal") {
      o.principal = need_string(m.key, m.value);
    } else {
      Usage("--json: unknown field " + m.key);
    }
  }
}

Options ParseFlags(int argc, char** argv) {
  if (argc < 2) Usage("give a mode");
  Options o;
  o.mode = argv[1];
  if (o.mode != "check" && o.mode != "load" && o.mode != "health") Usage("unknown mode " + o.mode);
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(flag + " needs a value");
      return argv[++i];
    };
    auto number = [&]() -> double {
      std::string v = value();
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || d < 0) Usage(flag + ": not a number: " + v);
      return d;
    };
    auto key_value = [&](char sep) {
      std::string v = value();
      size_t at = v.find(sep);
      if (at == std::string::npos) Usage(flag + ": expected key" + sep + "value, got " + v);
      std::string key = v.substr(0, at);
      std::string val = v.substr(at + 1);
      while (!val.empty() && val[0] == ' ') val.erase(0, 1);
      return std::pair{key, val};
    };
    if (flag == "--addr") {
      o.addr = value();
    } else if (flag == "--method") {
      o.method = value();
    } else if (flag == "--host") {
      o.host = value();
    } else if (flag == "--path") {
      o.path = value();
    } else if (flag == "--header") {
      o.headers.push_back(key_value(':'));
    } else if (flag == "--body") {
      o.body = value();
      o.has_body = true;
    } else if (flag == "--body-file") {
      o.body = ReadFileOrDie(value());
      o.has_body = true;
    } else if (flag == "--ext") {
      o.extensions.push_back(key_value('='));
    } else if (flag == "--principal") {
      o.principal = value();
    } else if (flag == "--no-pseudo-headers") {
      o.pseudo_headers = false;
    } else if (flag == "--timeout-ms") {
      o.timeout_ms = static_cast<int>(number());
    } else if (flag == "--json") {
      ApplyJson(value(), o);
    } else if (flag == "--concurrency") {
      o.concurrency = static_cast<int>(number());
    } else if (flag == "--connections") {
      o.connections = static_cast<int>(number());
    } else if (flag == "--duration") {
      o.duration_s = number();
    } else if (flag == "--requests") {
      o.requests = static_cast<int64_t>(number());
    } else if (flag == "--warmup") {
      o.warmup_s = number();
    } else if (flag == "--rate") {
      o.rate = number();
    } else if (flag == "--service") {
      o.service = value();
    } else {
      Usage("unknown flag " + flag);
    }
  }
  if (o.concurrency < 1 || o.connections < 1) Usage("--concurrency and --connections must be >= 1");
  return o;
}

authv3::CheckRequest BuildRequest(const Options& o) {
  authv3::CheckRequest r;
  auto* attributes = r.mutable_attributes();
  auto* http = attributes->mutable_request()->mutable_http();
  http->set_id("extauthz-client");
  http->set_method(o.method);
  http->set_host(o.host);
  http->set_path(o.path);
  http->set_scheme("http");
  http->set_protocol("HTTP/1.1");
  auto add = [&](const std::string& k, const std::string& v) {
    auto* h = http->add_headers();
    h->set_key(k);
    h->set_value(v);
  };
  if (o.pseudo_headers) {
    if (!o.host.empty()) add(":authority", o.host);
    add(":method", o.method);
    if (!o.path.empty()) add(":path", o.path);
    add(":scheme", "http");
  }
  bool content_type = false;
  for (const auto& [k, v] : o.headers) {
    add(Lower(k), v);
    content_type = content_type || Lower(k) == "content-type";
  }
  if (o.has_body) {
    if (!content_type) add("content-type", "application/json");
    add("content-length", std::to_string(o.body.size()));
    http->set_body(o.body);
    http->set_size(static_cast<int64_t>(o.body.size()));
  } else {
    http->set_size(-1);
  }
  for (const auto& [k, v] : o.extensions) (*attributes->mutable_context_extensions())[k] = v;
  if (!o.principal.empty()) attributes->mutable_source()->set_principal(o.principal);
  return r;
}

std::shared_ptr<grpc::Channel> Channel(const std::string& addr, int index) {
  grpc::ChannelArguments args;
  // A separate TCP connection per channel (gRPC would otherwise share one subchannel).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("aegis.extauthz_client.channel", index);
  args.SetMaxReceiveMessageSize(16 << 20);
  return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
}

void AppendHeaders(
    std::string& out,
    const google::protobuf::RepeatedPtrField<envoy::config::core::v3::HeaderValueOption>& hs) {
  out += "{";
  bool first = true;
  for (const auto& h : hs) {
    if (!first) out += ",";
    first = false;
    AppendJsonString(out, h.header().key());
    out += ":";
    AppendJsonString(out, h.header().value());
  }
  out += "}";
}

int RunCheck(const Options& o) {
  auto stub = authv3::Authorization::NewStub(Channel(o.addr, 0));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.timeout_ms));
  authv3::CheckResponse resp;
  grpc::Status st = stub->Check(&ctx, BuildRequest(o), &resp);
  std::string out = "{\"grpc_code\":" + std::to_string(st.error_code()) + ",\"grpc_message\":";
  AppendJsonString(out, st.error_message());
  if (!st.ok()) {
    std::cout << out << "}" << std::endl;
    return kExitTransport;
  }
  bool allowed = resp.status().code() == 0;
  out += ",\"allowed\":";
  out += allowed ? "true" : "false";
  out += ",\"status\":{\"code\":" + std::to_string(resp.status().code()) + ",\"message\":";
  AppendJsonString(out, resp.status().message());
  out += "}";
  if (resp.has_denied_response()) {
    const auto& d = resp.denied_response();
    out += ",\"http_status\":" + std::to_string(static_cast<int>(d.status().code()));
    out += ",\"headers\":";
    AppendHeaders(out, d.headers());
    out += ",\"response_headers\":{},\"body\":";
    AppendJsonString(out, d.body());
  } else {
    out += ",\"http_status\":null,\"headers\":";
    AppendHeaders(out, resp.ok_response().headers());
    out += ",\"response_headers\":";
    AppendHeaders(out, resp.ok_response().response_headers_to_add());
    out += ",\"body\":null";
  }
  out += "}";
  std::cout << out << std::endl;
  return allowed ? kExitAllowed : kExitRefused;
}

int RunHealth(const Options& o) {
  auto stub = ::grpc::health::v1::Health::NewStub(Channel(o.addr, 0));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.timeout_ms));
  ::grpc::health::v1::HealthCheckRequest req;
  req.set_service(o.service);
  ::grpc::health::v1::HealthCheckResponse resp;
  grpc::Status st = stub->Check(&ctx, req, &resp);
  std::string out = "{\"grpc_code\":" + std::to_string(st.error_code()) + ",\"status\":";
  AppendJsonString(
      out,
      st.ok() ? ::grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) : "");
  std::cout << out << "}" << std::endl;
  if (!st.ok()) return kExitTransport;
  return resp.status() == ::grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

// Latencies in microsecond buckets up to 100 ms, lock-free: completions arrive on gRPC's threads.
class Histogram {
 public:
  static constexpr int64_t kMaxMicros = 100'000;
  void Record(int64_t micros) {
    if (micros < 0) micros = 0;
    buckets_[micros < kMaxMicros ? micros : kMaxMicros].fetch_add(1, std::memory_order_relaxed);
    int64_t prev = max_.load(std::memory_order_relaxed);
    while (micros > prev && !max_.compare_exchange_weak(prev, micros)) {
    }
  }
  // The smallest latency that at least `q` of the calls stayed within.
  int64_t Quantile(double q) const {
    int64_t total = 0;
    for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
    if (total == 0) return 0;
    int64_t want = static_cast<int64_t>(q * static_cast<double>(total) + 0.999999);
    int64_t seen = 0;
    for (int64_t i = 0; i <= kMaxMicros; ++i) {
      seen += buckets_[i].load(std::memory_order_relaxed);
      if (seen >= want) return i;
    }
    return kMaxMicros;
  }
  int64_t max() const { return max_.load(); }

 private:
  std::vector<std::atomic<int64_t>> buckets_ = std::vector<std::atomic<int64_t>>(kMaxMicros + 1);
  std::atomic<int64_t> max_{0};
};

class LoadRun {
 public:
  explicit LoadRun(const Options& o) : o_(o), request_(BuildRequest(o)) {
    for (int i = 0; i < o.connections; ++i) {
      stubs_.push_back(authv3::Authorization::NewStub(Channel(o.addr, i)));
    }
  }

  int Run() {
    start_ = Clock::now();
    measure_from_ = start_ + ToDuration(o_.warmup_s);
    end_ = measure_from_ + ToDuration(o_.duration_s);
    if (o_.rate > 0) {
      OpenLoop();
    } else {
      for (int i = 0; i < o_.concurrency; ++i) Issue();
    }
    {
      std::unique_lock lock(mu_);
      done_cv_.wait(lock, [&] { return in_flight_.load() == 0 && stopped_.load(); });
    }
    Clock::time_point measured_end = last_completion_.load();
    double seconds = std::chrono::duration<double>(measured_end - measure_from_).count();
    if (o_.requests > 0 || seconds <= 0) {
      seconds = std::chrono::duration<double>(measured_end - start_).count();
    }
    int64_t n = ok_.load() + refused_.load();
    std::string out = "{\"requests\":" + std::to_string(n) +
                      ",\"allowed\":" + std::to_string(ok_.load()) +
                      ",\"refused\":" + std::to_string(refused_.load()) +
                      ",\"errors\":" + std::to_string(errors_.load());
    if (!first_error_.empty()) {
      out += ",\"first_error\":";
      AppendJsonString(out, first_error_);
    }
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  ",\"seconds\":%.3f,\"rps\":%.1f,\"concurrency\":%d,\"connections\":%d"
                  ",\"target_rate\":%.1f",
                  seconds, seconds > 0 ? static_cast<double>(n) / seconds : 0.0, o_.concurrency,
                  o_.connections, o_.rate);
    out += buf;
    out += ",\"latency_us\":{\"p50\":" + std::to_string(hist_.Quantile(0.50)) +
           ",\"p90\":" + std::to_string(hist_.Quantile(0.90)) +
           ",\"p99\":" + std::to_string(hist_.Quantile(0.99)) +
           ",\"p999\":" + std::to_string(hist_.Quantile(0.999)) +
           ",\"max\":" + std::to_string(hist_.max()) + "}}";
    std::cout << out << std::endl;
    return n > 0 ? 0 : kExitTransport;
  }

 private:
  struct Call {
    grpc::ClientContext ctx;
    authv3::CheckResponse resp;
    Clock::time_point scheduled;
  };

  static Clock::duration ToDuration(double seconds) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  // Whether another call may start now.
  bool MayIssue(Clock::time_point now) {
    if (stopped_.load()) return false;
    if (o_.requests > 0 ? issued_.fetch_add(1) >= o_.requests : now >= end_) {
      stopped_.store(true);
      return false;
    }
    return true;
  }

  // Starts one call, due at `scheduled`; MayIssue said yes.
  void Start(Clock::time_point scheduled) {
    in_flight_.fetch_add(1);
    auto* call = new Call;
    call->scheduled = scheduled;
    call->ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(o_.timeout_ms));
    auto& stub = stubs_[next_stub_.fetch_add(1) % stubs_.size()];
    stub->async()->Check(&call->ctx, &request_, &call->resp,
                         [this, call](grpc::Status st) { Complete(call, st); });
  }

  // Closed loop: the next call as soon as one finishes.
  void Issue() {
    Clock::time_point now = Clock::now();
    if (MayIssue(now)) {
      Start(now);
    } else {
      NotifyIfDone();
    }
  }

  void Complete(Call* call, const grpc::Status& st) {
    Clock::time_point now = Clock::now();
    bool measured = o_.requests > 0 || call->scheduled >= measure_from_;
    if (measured) {
      if (!st.ok()) {
        if (errors_.fetch_add(1) == 0) {
          std::lock_guard lock(mu_);
          first_error_ = std::to_string(st.error_code()) + ": " + st.error_message();
        }
      } else {
        (call->resp.status().code() == 0 ? ok_ : refused_).fetch_add(1);
        hist_.Record(
            std::chrono::duration_cast<std::chrono::microseconds>(now - call->scheduled).count());
      }
      Clock::time_point prev = last_completion_.load();
      while (now > prev && !last_completion_.compare_exchange_weak(prev, now)) {
      }
    }
    delete call;
    in_flight_.fetch_sub(1);
    if (o_.rate > 0) {
      {
        std::lock_guard lock(mu_);
        slots_cv_.notify_one();
      }
      NotifyIfDone();
    } else {
      // Against a server that is down every call fails at once; do not spin.
      if (!st.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      Issue();
    }
  }

  void NotifyIfDone() {
    if (in_flight_.load() == 0 && stopped_.load()) {
      std::lock_guard lock(mu_);
      done_cv_.notify_all();
    }
  }

  // Calls at a fixed rate whatever the answers' latency (no coordinated omission): latency is
  // measured from when a call was due, so a stall counts against every call it delays.
  void OpenLoop() {
    Clock::duration interval = ToDuration(1.0 / o_.rate);
    Clock::time_point due = Clock::now();
    while (true) {
      std::this_thread::sleep_until(due);
      {
        std::unique_lock lock(mu_);
        slots_cv_.wait(lock, [&] { return in_flight_.load() < o_.concurrency; });
      }
      if (!MayIssue(Clock::now())) break;
      Start(due);
      due += interval;
    }
    NotifyIfDone();
  }

  const Options& o_;
  const authv3::CheckRequest request_;
  std::vector<std::unique_ptr<authv3::Authorization::Stub>> stubs_;
  std::atomic<size_t> next_stub_{0};
  Clock::time_point start_, measure_from_, end_;
  std::atomic<Clock::time_point> last_completion_{};
  std::atomic<int64_t> issued_{0}, ok_{0}, refused_{0}, errors_{0};
  std::atomic<int> in_flight_{0};
  std::atomic<bool> stopped_{false};
  std::mutex mu_;
  std::condition_variable done_cv_, slots_cv_;
  std::string first_error_;
  Histogram hist_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseFlags(argc, argv);
  if (o.mode == "check") return RunCheck(o);
  if (o.mode == "health") return RunHealth(o);
  return LoadRun(o).Run();
}
