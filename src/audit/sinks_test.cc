// The sinks against real receivers on free loopback ports: a file in a temp dir (and stdout
// redirected to one), an in-test syslog server over UDP and TCP that parses what it gets as
// RFC 5424 (octet-counted frames for TCP), and an HTTP server (net::HttpServer) for webhooks.
// Waits poll with a deadline; nothing asserts on a sleep.
#include "audit/sinks.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "common/strings.h"
#include "net/http_server.h"

namespace aegis::audit {
namespace {

namespace http = boost::beast::http;
using Clock = std::chrono::steady_clock;
using common::StrCat;
using std::chrono::milliseconds;

constexpr milliseconds kWait{10000};            // how long a wait may take before the test fails
constexpr int64_t kTime = 1767225600123456789;  // 2026-01-01T00:00:00.123456789Z

bool WaitUntil(const std::function<bool()>& done, milliseconds timeout = kWait) {
  const auto until = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= until) return false;
    std::this_thread::sleep_for(milliseconds(2));
  }
  return true;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "aegis_sinks_XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(std::string_view name) const { return StrCat(path_, "/", name); }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Logs {
 public:
  Sinks::LogFn Fn() {
    return [this](std::string_view level, const std::string& message) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_ += StrCat(level, ": ", message, "\n");
    };
  }
  std::string All() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  mutable std::mutex mu_;
  std::string lines_;
};

// A decision record line as the writer makes them (members in order, '\n'-terminated).
std::string DecisionLine(int seq, std::string_view decision, std::string_view decision_id = "",
                         std::string_view agent = "finance-agent") {
  std::string id, agent_json;
  common::AppendJsonString(id, decision_id.empty() ? StrCat("dec_", seq) : decision_id);
  common::AppendJsonString(agent_json, agent);
  return StrCat("{\"seq\":", seq, ",\"prev\":\"", std::string(64, 'a'), "\",\"time\":", kTime,
                ",\"decision_id\":", id, ",\"tenant\":\"acme\",\"agent\":", agent_json,
                ",\"tool\":\"stripe\",\"action\":\"create_payment\",\"decision\":\"", decision,
                "\",\"effective\":\"", decision, "\",\"reasons\":[\"rule:payments\"],\"hash\":\"",
                std::string(64, 'b'), "\"}\n");
}

std::string EventLine(int seq) {
  return StrCat("{\"seq\":", seq, ",\"prev\":\"", std::string(64, 'c'), "\",\"time\":", kTime,
                ",\"event\":\"records_dropped\",\"count\":17,\"hash\":\"", std::string(64, 'd'),
                "\"}\n");
}

std::string Chomp(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  return std::string(line);
}

// One RFC 5424 message taken apart; `ok` is false when it does not follow the grammar.
struct SyslogMessage {
  bool ok = false;
  int pri = -1;
  std::string timestamp, hostname, app_name, procid, msgid, sd_id;
  std::map<std::string, std::string> params;  // unescaped
  std::string msg;
};

SyslogMessage ParseSyslog(std::string_view m) {
  SyslogMessage out;
  if (m.empty() || m[0] != '<') return out;
  size_t close = m.find('>');
  if (close == std::string_view::npos || close < 2 || close > 4) return out;
  out.pri = std::stoi(std::string(m.substr(1, close - 1)));
  m.remove_prefix(close + 1);
  if (m.substr(0, 2) != "1 ") return out;
  m.remove_prefix(2);
  std::string* fields[] = {&out.timestamp, &out.hostname, &out.app_name, &out.procid, &out.msgid};
  for (std::string* f : fields) {
    size_t sp = m.find(' ');
    if (sp == std::string_view::npos || sp == 0) return out;
    *f = std::string(m.substr(0, sp));
    for (char c : *f) {
      if (c < 33 || c > 126) return out;
    }
    m.remove_prefix(sp + 1);
  }
  if (m.empty() || m[0] != '[') return out;
  size_t sp = m.find(' ');
  if (sp == std::string_view::npos) return out;
  out.sd_id = std::string(m.substr(1, sp - 1));
  m.remove_prefix(sp);
  while (!m.empty() && m[0] == ' ') {
    size_t eq = m.find("=\"");
    if (eq == std::string_view::npos) return out;
    std::string name(m.substr(1, eq - 1));
    m.remove_prefix(eq + 2);
    std::string value;
    while (true) {
      if (m.empty()) return out;
      char c = m[0];
      if (c == '"') break;
      if (c == ']') return out;  // must have been escaped
      if (c == '\\' && m.size() > 1 && (m[1] == '"' || m[1] == '\\' || m[1] == ']')) {
        value += m[1];
        m.remove_prefix(2);
        continue;
      }
      value += c;
      m.remove_prefix(1);
    }
    m.remove_prefix(1);  // the closing quote
    out.params[name] = value;
  }
  if (m.empty() || m[0] != ']') return out;
  m.remove_prefix(1);
  if (!m.empty()) {
    if (m[0] != ' ') return out;
    out.msg = std::string(m.substr(1));
  }
  out.ok = true;
  return out;
}

// A syslog receiver over UDP on a free loopback port.
class UdpReceiver {
 public:
  UdpReceiver() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int size = 4 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~UdpReceiver() { ::close(fd_); }
  std::string Address() const { return StrCat("127.0.0.1:", port_); }

  // Waits for `n` more datagrams; returns what came by the deadline.
  std::vector<std::string> Receive(size_t n) {
    std::vector<std::string> got;
    const auto until = Clock::now() + kWait;
    std::string buf(70000, '\0');
    while (got.size() < n && Clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      ssize_t r = ::recv(fd_, buf.data(), buf.size(), 0);
      if (r >= 0) got.emplace_back(buf.data(), static_cast<size_t>(r));
    }
    return got;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A syslog receiver over TCP on a loopback port: accepts any number of connections and splits
// what arrives into RFC 6587 octet-counted frames. Stop closes everything (the listener and
// the connections); Start(port) listens again on the same port.
class TcpReceiver {
 public:
  TcpReceiver() { Start(0); }
  ~TcpReceiver() { Stop(); }

  void Start(int port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    ASSERT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
    ASSERT_EQ(::listen(listener_, 16), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    stop_ = false;
    thread_ = std::thread([this] { Run(); });
  }

  void Stop() {
    if (!thread_.joinable()) return;
    stop_ = true;
    thread_.join();
    for (auto& c : conns_) ::close(c.fd);
    conns_.clear();
    ::close(listener_);
  }

  int port() const { return port_; }
  std::string Address() const { return StrCat("127.0.0.1:", port_); }
  std::vector<std::string> Messages() const {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  size_t Count() const { return Messages().size(); }
  bool framing_error() const { return framing_error_; }
  int accepted() const { return accepted_; }

 private:
  struct Conn {
    int fd;
    std::string buf;
  };

  void Run() {
    while (!stop_) {
      std::vector<pollfd> fds{{listener_, POLLIN, 0}};
      for (auto& c : conns_) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          conns_.push_back({fd, ""});
          ++accepted_;
        }
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        Conn& c = conns_[i - 1];
        char buf[65536];
        ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
        if (n > 0) {
          c.buf.append(buf, static_cast<size_t>(n));
          Split(c.buf);
        } else if (n == 0) {
          if (!c.buf.empty()) framing_error_ = true;  // a torn frame
          ::close(c.fd);
          c.fd = -1;
        }
      }
      std::erase_if(conns_, [](const Conn& c) { return c.fd < 0; });
    }
  }

  // Takes the complete frames off the front of `buf`.
  void Split(std::string& buf) {
    size_t at = 0;
    while (true) {
      size_t sp = buf.find(' ', at);
      if (sp == std::string::npos) break;
      std::string len_text = buf.substr(at, sp - at);
      if (len_text.empty() || len_text.size() > 9 || len_text[0] == '0' ||
          len_text.find_first_not_of("0123456789") != std::string::npos) {
        framing_error_ = true;
        buf.clear();
        return;
      }
      size_t len = std::stoul(len_text);
      if (buf.size() - sp - 1 < len) break;
      std::lock_guard<std::mutex> lock(mu_);
      messages_.push_back(buf.substr(sp + 1, len));
      at = sp + 1 + len;
    }
    buf.erase(0, at);
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> framing_error_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
  std::vector<Conn> conns_;  // the thread's own
  mutable std::mutex mu_;
  std::vector<std::string> messages_;
};

// A webhook receiver on a free port: records every request and answers as `answer` says for
// the n-th (0-based); 200 by default.
class WebhookReceiver {
 public:
  struct Request {
    std::string target;
    std::string body;
    std::map<std::string, std::string> headers;  // lower-case names
    Clock::time_point at;
  };
  using Answer = std::function<void(int n, net::HttpResponse&)>;

  explicit WebhookReceiver(Answer answer = {}) : answer_(std::move(answer)) {
    net::HttpServerOptions options;
    options.address = "127.0.0.1:0";
    options.threads = 1;
    options.max_body_bytes = 8 << 20;
    server_ = std::make_unique<net::HttpServer>(
        options, [this](const net::HttpRequest& req, net::HttpResponse& res) { Handle(req, res); });
    EXPECT_TRUE(server_->Start().ok());
  }
  ~WebhookReceiver() { Stop(); }
  void Stop() { server_->Stop(milliseconds(100)); }

  // The path carries a secret, as real webhook URLs do; logs must never show it.
  std::string Url() const {
    return StrCat("http://127.0.0.1:", server_->port(), "/hooks/SECRET-TOKEN-123");
  }
  std::vector<Request> Received() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  bool WaitFor(size_t count) const {
    return WaitUntil([&] { return Received().size() >= count; });
  }
  // Every line received, over all requests, in order.
  std::vector<std::string> Lines() const {
    std::vector<std::string> out;
    for (const Request& r : Received()) {
      std::string_view body = r.body;
      while (!body.empty()) {
        size_t nl = std::min(body.find('\n'), body.size() - 1);
        out.emplace_back(body.substr(0, nl + 1));
        body.remove_prefix(nl + 1);
      }
    }
    return out;
  }

 private:
  void Handle(const net::HttpRequest& req, net::HttpResponse& res) {
    Request r;
    r.target = std::string(req.target());
    r.body = req.body();
    r.at = Clock::now();
    for (const auto& f : req) {
      std::string name(f.name_string());
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(f.value());
    }
    int n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      n = static_cast<int>(requests_.size());
      requests_.push_back(std::move(r));
    }
    res.result(http::status::ok);
    if (answer_) answer_(n, res);
  }

  Answer answer_;
  mutable std::mutex mu_;
  std::vector<Request> requests_;
  std::unique_ptr<net::HttpServer> server_;
};

// Holds webhook handlers until opened (or destroyed), to stall a sink mid-request.
class Gate {
 public:
  ~Gate() { Open(); }
  void Open() {
    std::call_once(opened_, [&] { promise_.set_value(); });
  }
  void Wait() { future_.wait(); }

 private:
  std::promise<void> promise_;
  std::shared_future<void> future_ = promise_.get_future().share();
  std::once_flag opened_;
};

SinkOptions FileSink(std::string name, std::string path) {
  SinkOptions o;
  o.name = std::move(name);
  o.kind = SinkKind::kFile;
  o.path = std::move(path);
  return o;
}

SinkOptions SyslogSink(std::string address, bool tcp) {
  SinkOptions o;
  o.name = "siem";
  o.kind = SinkKind::kSyslog;
  o.address = std::move(address);
  o.tcp = tcp;
  o.hostname = "gw-1";
  o.backoff_initial = milliseconds(10);
  o.backoff_max = milliseconds(50);
  return o;
}

SinkOptions WebhookSink(const WebhookReceiver& r) {
  SinkOptions o;
  o.name = "hook";
  o.kind = SinkKind::kWebhook;
  o.url = r.Url();
  o.batch_interval = milliseconds(3600 * 1000);  // only full batches and Stop send, unless set
  o.backoff_initial = milliseconds(10);
  o.backoff_max = milliseconds(5000);
  return o;
}

std::unique_ptr<Sinks> StartOrDie(std::vector<SinkOptions> options, Sinks::LogFn log = {}) {
  auto sinks = Sinks::Start(std::move(options), std::move(log));
  EXPECT_TRUE(sinks.ok()) << sinks.status();
  return sinks.ok() ? std::move(*sinks) : nullptr;
}

uint64_t Published(const Sinks::Stats& s) {
  return s.delivered + s.dropped_buffer_full + s.dropped_delivery_failed + s.dropped_shutdown;
}

// ---------------------------------------------------------------------------------------------
// Options

TEST(SinkOptions, ValidationNamesTheSinkAndTheField) {
  auto error = [](const SinkOptions& o) { return ValidateSinkOptions(o).message(); };
  SinkOptions o;
  o.name = "stdout-1_a";
  EXPECT_TRUE(ValidateSinkOptions(o).ok());

  for (const std::string& bad : std::vector<std::string>{
           "", "Siem", "a b", "siem!", std::string(65, 'a'), std::string("a\0b", 3)}) {
    o.name = bad;
    auto s = ValidateSinkOptions(o);
    EXPECT_EQ(s.code(), common::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("audit sink name"), std::string::npos) << s.message();
  }
  o.name = std::string(64, 'a');
  EXPECT_TRUE(ValidateSinkOptions(o).ok());

  SinkOptions f = FileSink("trail", "");
  EXPECT_EQ(error(f), "audit sink \"trail\": path is empty");

  SinkOptions s = SyslogSink("127.0.0.1:514", false);
  EXPECT_TRUE(ValidateSinkOptions(s).ok());
  for (std::string good : {"[::1]:514", "syslog.example.com:6514", "LOCALHOST:1"}) {
    s.address = good;
    EXPECT_TRUE(ValidateSinkOptions(s).ok()) << good << ": " << error(s);
  }
  for (std::string bad : {"", "syslog.example.com", "host:0", "host:99999", "host:", "::1:514",
                          "[::1]", "bad host:514", "0x7f.1:514", "a/b:514", "host:51x"}) {
    s.address = bad;
    EXPECT_EQ(error(s).rfind("audit sink \"siem\": address", 0), 0u) << bad << ": " << error(s);
  }
  s = SyslogSink("127.0.0.1:514", false);
  s.facility = 24;
  EXPECT_EQ(error(s), "audit sink \"siem\": facility must be 0 to 23");
  s.facility = -1;
  EXPECT_EQ(error(s), "audit sink \"siem\": facility must be 0 to 23");
  s.facility = 23;
  EXPECT_TRUE(ValidateSinkOptions(s).ok());
  s.max_datagram_bytes = 100;
  EXPECT_EQ(error(s), "audit sink \"siem\": max_datagram_bytes must be 480 to 65507");
  s.tcp = true;  // TCP does not truncate
  EXPECT_TRUE(ValidateSinkOptions(s).ok());

  SinkOptions w;
  w.name = "hook";
  w.kind = SinkKind::kWebhook;
  w.url = "https://siem.example.com/hooks/SECRET-TOKEN";
  EXPECT_TRUE(ValidateSinkOptions(w).ok());
  for (std::string bad : {"", "ftp://siem.example.com/x", "https://user@siem.example.com/x",
                          "https://siem.example.com/hooks/SECRET-TOKEN with space",
                          "https://siem.example.com:99999/SECRET-TOKEN"}) {
    w.url = bad;
    std::string m = error(w);
    EXPECT_EQ(m.rfind("audit sink \"hook\": url", 0), 0u) << bad << ": " << m;
    EXPECT_EQ(m.find("SECRET-TOKEN"), std::string::npos) << m;
  }
  w.url = "https://siem.example.com/hooks/x";
  w.headers = {{"content-type", "text/plain"}};
  EXPECT_EQ(error(w).rfind("audit sink \"hook\": headers", 0), 0u) << error(w);
  w.headers = {{"Authorization", "Bearer a\r\nInjected: yes"}};
  EXPECT_EQ(error(w).rfind("audit sink \"hook\": headers", 0), 0u) << error(w);
  w.headers = {{"Bad Header", "x"}};
  EXPECT_EQ(error(w).rfind("audit sink \"hook\": headers", 0), 0u) << error(w);
  w.headers = {{"Authorization", "Bearer token"}};
  EXPECT_TRUE(ValidateSinkOptions(w).ok());

  o = {};
  o.name = "out";
  o.buffer_records = 0;
  EXPECT_EQ(error(o), "audit sink \"out\": buffer_records must be at least 1");
  o = {};
  o.name = "out";
  o.batch_records = 0;
  EXPECT_EQ(error(o), "audit sink \"out\": batch_records must be at least 1");
  o = {};
  o.name = "out";
  o.max_attempts = 0;
  EXPECT_EQ(error(o), "audit sink \"out\": max_attempts must be at least 1");
  o = {};
  o.name = "out";
  o.timeout = milliseconds(0);
  EXPECT_EQ(error(o), "audit sink \"out\": timeout must be positive");
  o = {};
  o.name = "out";
  o.batch_interval = milliseconds(-1);
  EXPECT_EQ(error(o), "audit sink \"out\": batch_interval must be positive");
  o = {};
  o.name = "out";
  o.backoff_max = milliseconds(100);
  EXPECT_EQ(error(o), "audit sink \"out\": backoff_max must not be below backoff_initial");
  o = {};
  o.name = "out";
  o.kind = static_cast<SinkKind>(42);
  EXPECT_EQ(error(o), "audit sink \"out\": kind is unknown");
}

TEST(Sinks, StartRefusesDuplicateNamesBadPathsAndUnreadableCaFiles) {
  TempDir dir;
  auto dup = Sinks::Start({FileSink("a", dir.File("1.log")), FileSink("a", dir.File("2.log"))}, {});
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().message(), "audit sink \"a\": name is used by another sink");

  auto bad_path = Sinks::Start({FileSink("a", dir.File("missing/dir/trail.log"))}, {});
  ASSERT_FALSE(bad_path.ok());
  EXPECT_NE(bad_path.status().message().find("audit sink \"a\": cannot open"), std::string::npos)
      << bad_path.status();
  EXPECT_NE(bad_path.status().message().find("missing/dir/trail.log"), std::string::npos);

  SinkOptions w;
  w.name = "hook";
  w.kind = SinkKind::kWebhook;
  w.url = "https://siem.example.com/x";
  w.ca_file = dir.File("no-such-ca.pem");
  auto bad_ca = Sinks::Start({w}, {});
  ASSERT_FALSE(bad_ca.ok());
  EXPECT_NE(bad_ca.status().message().find("ca_file"), std::string::npos) << bad_ca.status();

  SinkOptions invalid = FileSink("b", "");
  auto refused = Sinks::Start({FileSink("a", dir.File("ok.log")), invalid}, {});
  EXPECT_EQ(refused.status().code(), common::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// File and stdout

TEST(FileSink, WritesTheLinesByteForByte) {
  TempDir dir;
  const std::string path = dir.File("trail.ndjson");
  auto sinks = StartOrDie({FileSink("trail", path)});
  std::string all;
  std::string many;
  for (int i = 1; i <= 5; ++i) many += DecisionLine(i, "allow");
  sinks->Publish(many);  // several lines in one view
  all += many;
  for (int i = 6; i <= 300; ++i) {
    std::string line = i % 50 == 0 ? EventLine(i) : DecisionLine(i, i % 2 ? "deny" : "allow");
    sinks->Publish(line);
    all += line;
  }
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(path) == all; })) << ReadFile(path).size();
  sinks->Stop(milliseconds(5000));
  EXPECT_EQ(ReadFile(path), all);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto s = sinks->stats("trail");
  EXPECT_EQ(s.delivered, 300u);
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(s.queue_depth, 0u);
}

TEST(FileSink, AppendsToAnExistingFileAndMendsUnterminatedInput) {
  TempDir dir;
  const std::string path = dir.File("trail.ndjson");
  { std::ofstream(path) << "earlier\n"; }
  auto sinks = StartOrDie({FileSink("trail", path)});
  sinks->Publish("{\"a\":1}\n\n{\"b\":2}");  // an empty line is skipped, the last gets its '\n'
  sinks->Publish("");
  sinks->Stop(milliseconds(5000));
  EXPECT_EQ(ReadFile(path), "earlier\n{\"a\":1}\n{\"b\":2}\n");
  EXPECT_EQ(sinks->stats("trail").delivered, 2u);
}

TEST(FileSink, ReopenAfterRenameWritesToANewFile) {
  TempDir dir;
  const std::string path = dir.File("trail.ndjson");
  const std::string rotated = dir.File("trail.ndjson.1");
  Logs logs;
  auto sinks = StartOrDie({FileSink("trail", path)}, logs.Fn());
  const std::string before = DecisionLine(1, "allow") + DecisionLine(2, "deny");
  sinks->Publish(before);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(path) == before; }));
  ASSERT_EQ(::rename(path.c_str(), rotated.c_str()), 0);
  sinks->Reopen();
  const std::string after = DecisionLine(3, "allow");
  sinks->Publish(after);
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(path) == after; })) << ReadFile(path);
  sinks->Stop(milliseconds(5000));
  EXPECT_EQ(ReadFile(rotated), before);
  EXPECT_EQ(ReadFile(path), after);
  EXPECT_NE(logs.All().find("audit sink \"trail\" (file " + path + "): reopened"),
            std::string::npos)
      << logs.All();
}

TEST(FileSink, AReopenThatFailsKeepsTheOldFileAndIsRetried) {
  TempDir dir;
  const std::string path = dir.File("trail.ndjson");
  const std::string rotated = dir.File("trail.ndjson.1");
  Logs logs;
  auto sinks = StartOrDie({FileSink("trail", path)}, logs.Fn());
  sinks->Publish(DecisionLine(1, "allow"));
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(path) == DecisionLine(1, "allow"); }));
  ASSERT_EQ(::rename(path.c_str(), rotated.c_str()), 0);
  ASSERT_EQ(::mkdir(path.c_str(), 0700), 0);  // the path cannot be opened as a file now
  sinks->Reopen();
  sinks->Publish(DecisionLine(2, "deny"));
  const std::string both = DecisionLine(1, "allow") + DecisionLine(2, "deny");
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(rotated) == both; })) << ReadFile(rotated);
  ASSERT_TRUE(WaitUntil([&] { return logs.All().find("cannot reopen") != std::string::npos; }));
  EXPECT_NE(logs.All().find("error: audit sink \"trail\" (file " + path + "): cannot reopen: "),
            std::string::npos)
      << logs.All();
  ASSERT_EQ(::rmdir(path.c_str()), 0);
  sinks->Reopen();
  sinks->Publish(DecisionLine(3, "allow"));
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(path) == DecisionLine(3, "allow"); }));
  sinks->Stop(milliseconds(5000));
  EXPECT_EQ(ReadFile(rotated), both);
  EXPECT_EQ(sinks->stats("trail").delivered, 3u);
  EXPECT_EQ(sinks->stats("trail").failures, 0u);
}

TEST(FileSink, StdoutWritesToFdOne) {
  TempDir dir;
  const std::string path = dir.File("stdout.txt");
  std::fflush(stdout);
  int saved = ::dup(STDOUT_FILENO);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
  ::close(fd);
  SinkOptions o;
  o.name = "out";
  o.kind = SinkKind::kStdout;
  auto sinks = StartOrDie({o});
  const std::string lines = DecisionLine(1, "allow") + EventLine(2);
  sinks->Publish(lines);
  sinks->Stop(milliseconds(5000));
  auto s = sinks->stats("out");
  sinks.reset();  // fd 1 stays open: the sink never closes it
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  EXPECT_EQ(ReadFile(path), lines);
  EXPECT_EQ(s.delivered, 2u);
}

// ---------------------------------------------------------------------------------------------
// Syslog

TEST(SyslogFormat, SanitisesHeaderFieldsAndStructuredData) {
  // A non-JSON line: an event-like message with NILVALUEs and the time now.
  std::string m = FormatSyslogMessage("not json\n", 13, "gw 1\xC3\xA9", "aegis", 42, kTime);
  EXPECT_EQ(m,
            "<108>1 2026-01-01T00:00:00.123456Z gw_1__ aegis 42 event [aegis@32473 "
            "decision_id=\"-\" agent=\"-\" tenant=\"-\" decision=\"-\"] not json");

  // Header fields: cut to RFC 5424 lengths, empty becomes NILVALUE.
  m = FormatSyslogMessage(DecisionLine(1, "allow"), 1, std::string(300, 'h'), std::string(60, 'a'),
                          7, 0);
  auto p = ParseSyslog(m);
  ASSERT_TRUE(p.ok) << m;
  EXPECT_EQ(p.pri, 1 * 8 + 6);
  EXPECT_EQ(p.hostname, std::string(255, 'h'));
  EXPECT_EQ(p.app_name, std::string(48, 'a'));
  m = FormatSyslogMessage(DecisionLine(1, "allow"), 1, "", "", 7, 0);
  p = ParseSyslog(m);
  ASSERT_TRUE(p.ok) << m;
  EXPECT_EQ(p.hostname, "-");
  EXPECT_EQ(p.app_name, "-");

  // SD values: control bytes replaced, long values cut, non-strings are NILVALUE.
  std::string line = StrCat("{\"time\":\"soon\",\"decision_id\":\"a\\u0001b\\nc\",\"agent\":\"",
                            std::string(300, 'x'), "\",\"tenant\":7,\"decision\":\"deny\"}");
  m = FormatSyslogMessage(line, 13, "h", "a", 1, 1000);
  p = ParseSyslog(m);
  ASSERT_TRUE(p.ok) << m;
  EXPECT_EQ(p.timestamp, "1970-01-01T00:00:00.000001Z");  // "time" not an integer: now
  EXPECT_EQ(p.params["decision_id"], "a_b_c");
  EXPECT_EQ(p.params["agent"], std::string(256, 'x'));
  EXPECT_EQ(p.params["tenant"], "-");
  EXPECT_EQ(p.pri, 13 * 8 + 4);
  EXPECT_EQ(p.msg, line);

  // A JSON value that is not an object, and an unknown decision.
  EXPECT_EQ(ParseSyslog(FormatSyslogMessage("[1,2]", 13, "h", "a", 1, 0)).msgid, "event");
  p = ParseSyslog(FormatSyslogMessage(DecisionLine(1, "maybe"), 13, "h", "a", 1, 0));
  EXPECT_EQ(p.msgid, "decision");
  EXPECT_EQ(p.pri, 13 * 8 + 4);
  // A cut never splits a UTF-8 character.
  std::string agent = std::string(255, 'x') + "\xC3\xA9";
  p = ParseSyslog(FormatSyslogMessage(StrCat("{\"agent\":\"", agent, "\"}"), 13, "h", "a", 1, 0));
  EXPECT_EQ(p.params["agent"], std::string(255, 'x'));
}

TEST(SyslogSink, UdpMessagesCarryPriHeaderStructuredDataAndTheLine) {
  UdpReceiver r;
  auto sinks = StartOrDie({SyslogSink(r.Address(), false)});
  const std::string hostile_id = "dec_\"]\\x";
  std::vector<std::string> lines = {
      DecisionLine(1, "allow"),
      DecisionLine(2, "deny", hostile_id),
      DecisionLine(3, "sanitize"),
      DecisionLine(4, "approval_needed"),
      EventLine(5),
  };
  std::string all;
  for (const auto& l : lines) all += l;
  sinks->Publish(all);
  auto got = r.Receive(lines.size());
  ASSERT_EQ(got.size(), lines.size());
  const int expected_pri[] = {110, 108, 110, 109, 108};  // facility 13 (log audit)
  for (size_t i = 0; i < lines.size(); ++i) {
    SyslogMessage m = ParseSyslog(got[i]);
    ASSERT_TRUE(m.ok) << got[i];
    EXPECT_EQ(m.pri, expected_pri[i]) << got[i];
    EXPECT_EQ(m.timestamp, "2026-01-01T00:00:00.123456Z");
    EXPECT_EQ(m.hostname, "gw-1");
    EXPECT_EQ(m.app_name, "aegis");
    EXPECT_EQ(m.procid, std::to_string(::getpid()));
    EXPECT_EQ(m.msgid, i == 4 ? "event" : "decision");
    EXPECT_EQ(m.sd_id, "aegis@32473");
    EXPECT_EQ(m.msg, Chomp(lines[i]));
    if (i < 4) {
      EXPECT_EQ(m.params["agent"], "finance-agent");
      EXPECT_EQ(m.params["tenant"], "acme");
    } else {
      EXPECT_EQ(m.params["decision_id"], "-");
      EXPECT_EQ(m.params["decision"], "-");
    }
  }
  EXPECT_EQ(ParseSyslog(got[0]).params["decision"], "allow");
  EXPECT_EQ(ParseSyslog(got[3]).params["decision"], "approval_needed");
  // The hostile decision_id, escaped on the wire ...
  EXPECT_NE(got[1].find("decision_id=\"dec_\\\"\\]\\\\x\""), std::string::npos) << got[1];
  // ... and read back intact.
  EXPECT_EQ(ParseSyslog(got[1]).params["decision_id"], hostile_id);
  sinks->Stop(milliseconds(5000));
  auto s = sinks->stats("siem");
  EXPECT_EQ(s.delivered, 5u);
  EXPECT_EQ(s.truncated, 0u);
}

TEST(SyslogSink, UdpTruncatesLongMessagesToTheDatagramLimitAndCounts) {
  UdpReceiver r;
  SinkOptions o = SyslogSink(r.Address(), false);
  o.max_datagram_bytes = 480;
  auto sinks = StartOrDie({o});
  const std::string big = DecisionLine(1, "deny", "", std::string(2000, 'z'));
  const std::string small = "{\"seq\":2,\"decision\":\"allow\"}\n";
  sinks->Publish(big + small);
  auto got = r.Receive(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].size(), 480u);
  SyslogMessage m = ParseSyslog(got[0]);
  ASSERT_TRUE(m.ok) << got[0];  // the header and structured data survive the cut
  EXPECT_EQ(m.pri, 108);
  EXPECT_EQ(Chomp(big).substr(0, m.msg.size()), m.msg);
  EXPECT_EQ(ParseSyslog(got[1]).msg, Chomp(small));
  ASSERT_TRUE(WaitUntil([&] { return sinks->stats("siem").delivered == 2; }));
  EXPECT_EQ(sinks->stats("siem").truncated, 1u);
  std::string metrics;
  sinks->AppendMetrics(metrics);
  EXPECT_NE(metrics.find("aegis_audit_sink_truncated_total{sink=\"siem\"} 1\n"), std::string::npos)
      << metrics;
}

TEST(SyslogSink, TcpOctetCountingSurvivesHostileLines) {
  TcpReceiver r;
  auto sinks = StartOrDie({SyslogSink(r.Address(), true)});
  std::vector<std::string> lines = {
      DecisionLine(1, "deny", "id with \"quotes\" ] and \\ backslash"),
      "this is not json at all ] [ \" \\\n",
      "{\"decision\":\"allow\",\"agent\":\"ctl\\u0001\\u0002\\r\\u001b[31m\x7f\"}\n",
      "raw control bytes \x01\x02\r\x1b[31m\x7f in a line that is not JSON\n",
      StrCat("{\"decision\":\"deny\",\"params\":\"", std::string(200000, 'q'), "\"}\n"),
      std::string("\x00\xff\xfe binary \x00\n", 13),
      "12 <34>1 fake frame inside a line\n",
      DecisionLine(7, "allow"),
  };
  for (const auto& l : lines) sinks->Publish(l);
  ASSERT_TRUE(WaitUntil([&] { return r.Count() >= lines.size(); })) << r.Count();
  auto got = r.Messages();
  ASSERT_EQ(got.size(), lines.size());
  EXPECT_FALSE(r.framing_error());
  for (size_t i = 0; i < lines.size(); ++i) {
    SyslogMessage m = ParseSyslog(got[i]);
    ASSERT_TRUE(m.ok) << i << ": " << got[i].substr(0, 300);
    EXPECT_EQ(m.msg, Chomp(lines[i])) << i;
  }
  EXPECT_EQ(ParseSyslog(got[0]).params["decision_id"], "id with \"quotes\" ] and \\ backslash");
  EXPECT_EQ(ParseSyslog(got[1]).msgid, "event");
  EXPECT_EQ(ParseSyslog(got[2]).params["agent"], "ctl____[31m_");
  EXPECT_EQ(ParseSyslog(got[3]).msgid, "event");
  EXPECT_EQ(ParseSyslog(got[4]).pri, 108);
  EXPECT_EQ(r.accepted(), 1);  // one persistent connection
  sinks->Stop(milliseconds(5000));
  EXPECT_EQ(sinks->stats("siem").delivered, lines.size());
}

TEST(SyslogSink, TcpReconnectsAfterTheReceiverRestarts) {
  TcpReceiver r;
  const int port = r.port();
  SinkOptions o = SyslogSink(r.Address(), true);
  o.max_attempts = 1000;  // ride out the outage
  Logs logs;
  auto sinks = StartOrDie({o}, logs.Fn());
  std::vector<std::string> sent;
  auto publish = [&](int from, int to) {
    for (int i = from; i <= to; ++i) {
      sent.push_back(DecisionLine(i, "allow"));
      sinks->Publish(sent.back());
    }
  };
  publish(1, 3);
  ASSERT_TRUE(WaitUntil([&] { return r.Count() == 3; }));

  r.Stop();  // closes the connection and the listener
  publish(4, 6);
  ASSERT_TRUE(WaitUntil([&] { return sinks->stats("siem").failures >= 2; }));
  r.Start(port);
  ASSERT_TRUE(WaitUntil([&] { return r.Count() == 6; })) << r.Count();
  publish(7, 9);
  ASSERT_TRUE(WaitUntil([&] { return r.Count() == 9; })) << r.Count();
  sinks->Stop(milliseconds(5000));

  auto got = r.Messages();
  ASSERT_EQ(got.size(), sent.size());
  for (size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(ParseSyslog(got[i]).msg, Chomp(sent[i]));
  EXPECT_FALSE(r.framing_error());
  EXPECT_EQ(r.accepted(), 2);
  auto s = sinks->stats("siem");
  EXPECT_EQ(s.delivered, 9u);
  EXPECT_EQ(Published(s), sent.size());
  EXPECT_NE(logs.All().find("connect to tcp 127.0.0.1:"), std::string::npos) << logs.All();
}

TEST(SyslogSink, TcpLinesPublishedWhileTheReceiverIsDownAreCountedWhenGivenUp) {
  TcpReceiver r;
  SinkOptions o = SyslogSink(r.Address(), true);
  o.max_attempts = 2;
  o.batch_records = 2;
  Logs logs;
  auto sinks = StartOrDie({o}, logs.Fn());
  sinks->Publish(DecisionLine(1, "allow"));
  ASSERT_TRUE(WaitUntil([&] { return r.Count() == 1; }));
  r.Stop();
  std::string down;
  for (int i = 2; i <= 6; ++i) down += DecisionLine(i, "deny");
  sinks->Publish(down);  // at once, so the batches are 2, 2 and 1 lines
  ASSERT_TRUE(WaitUntil([&] { return sinks->stats("siem").dropped_delivery_failed == 5; }));
  sinks->Stop(milliseconds(0));
  auto s = sinks->stats("siem");
  EXPECT_EQ(s.delivered, 1u);
  EXPECT_EQ(Published(s), 6u);
  EXPECT_EQ(s.failures, 6u);  // three batches (2, 2, 1 lines), two attempts each
  EXPECT_NE(logs.All().find("delivery_failed"), std::string::npos) << logs.All();
}

// ---------------------------------------------------------------------------------------------
// Webhook

TEST(WebhookSink, PostsNdjsonBatchesOfAtMostBatchRecords) {
  WebhookReceiver r;
  SinkOptions o = WebhookSink(r);
  o.batch_records = 3;
  o.headers = {{"Authorization", "Bearer siem-token"}};
  auto sinks = StartOrDie({o});
  std::vector<std::string> lines;
  std::string all;
  for (int i = 1; i <= 7; ++i) {
    lines.push_back(DecisionLine(i, "allow"));
    all += lines.back();
  }
  sinks->Publish(all);
  ASSERT_TRUE(r.WaitFor(2));
  EXPECT_EQ(sinks->stats("hook").queue_depth, 1u);  // the 7th waits for its batch or the timer
  sinks->Stop(milliseconds(5000));
  auto got = r.Received();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].body, lines[0] + lines[1] + lines[2]);
  EXPECT_EQ(got[1].body, lines[3] + lines[4] + lines[5]);
  EXPECT_EQ(got[2].body, lines[6]);
  for (const auto& req : got) {
    EXPECT_EQ(req.headers.at("content-type"), "application/x-ndjson");
    EXPECT_EQ(req.headers.at("authorization"), "Bearer siem-token");
    EXPECT_EQ(req.target, "/hooks/SECRET-TOKEN-123");
  }
  EXPECT_EQ(sinks->stats("hook").delivered, 7u);
}

TEST(WebhookSink, SendsAPartialBatchAfterTheBatchInterval) {
  WebhookReceiver r;
  SinkOptions o = WebhookSink(r);
  o.batch_interval = milliseconds(50);
  auto sinks = StartOrDie({o});
  const auto start = Clock::now();
  sinks->Publish(DecisionLine(1, "allow") + DecisionLine(2, "deny"));
  ASSERT_TRUE(r.WaitFor(1));
  auto got = r.Received();
  EXPECT_GE(got[0].at - start, milliseconds(45));
  EXPECT_EQ(got[0].body, DecisionLine(1, "allow") + DecisionLine(2, "deny"));
  sinks->Stop(milliseconds(1000));
  EXPECT_EQ(r.Received().size(), 1u);
}

TEST(WebhookSink, RetriesServerErrorsThenDelivers) {
  WebhookReceiver r([](int n, net::HttpResponse& res) {
    if (n < 2) res.result(http::status::internal_server_error);
  });
  Logs logs;
  auto sinks = StartOrDie({WebhookSink(r)}, logs.Fn());
  const std::string lines = DecisionLine(1, "allow") + DecisionLine(2, "deny");
  sinks->Publish(lines);
  sinks->Stop(milliseconds(5000));
  auto got = r.Received();
  ASSERT_EQ(got.size(), 3u);
  for (const auto& req : got) EXPECT_EQ(req.body, lines);
  auto s = sinks->stats("hook");
  EXPECT_EQ(s.delivered, 2u);
  EXPECT_EQ(s.failures, 2u);
  EXPECT_EQ(s.dropped_delivery_failed, 0u);
  EXPECT_NE(logs.All().find("HTTP 500"), std::string::npos) << logs.All();
  EXPECT_NE(logs.All().find("2 lines delivered on attempt 3"), std::string::npos) << logs.All();
  EXPECT_NE(logs.All().find("http://127.0.0.1:"), std::string::npos) << logs.All();
  EXPECT_EQ(logs.All().find("SECRET"), std::string::npos) << logs.All();
}

TEST(WebhookSink, A400DropsTheBatchAtOnce) {
  WebhookReceiver r([](int, net::HttpResponse& res) {
    res.result(http::status::bad_request);
    res.body() = "bad payload";
  });
  Logs logs;
  auto sinks = StartOrDie({WebhookSink(r)}, logs.Fn());
  sinks->Publish(DecisionLine(1, "allow") + DecisionLine(2, "allow") + DecisionLine(3, "deny"));
  sinks->Stop(milliseconds(5000));
  EXPECT_EQ(r.Received().size(), 1u);
  auto s = sinks->stats("hook");
  EXPECT_EQ(s.dropped_delivery_failed, 3u);
  EXPECT_EQ(s.failures, 1u);
  EXPECT_EQ(s.delivered, 0u);
  EXPECT_NE(logs.All().find("error: audit sink \"hook\" (webhook http://127.0.0.1:"),
            std::string::npos)
      << logs.All();
  EXPECT_NE(logs.All().find("dropped 3 lines after 1 attempt: HTTP 400: bad payload"),
            std::string::npos)
      << logs.All();
  EXPECT_NE(logs.All().find("dropped 3 lines (delivery_failed 3)"), std::string::npos)
      << logs.All();
  EXPECT_EQ(logs.All().find("SECRET"), std::string::npos) << logs.All();
}

TEST(WebhookSink, RetriesTimeoutsAndThrottling) {
  WebhookReceiver r([](int n, net::HttpResponse& res) {
    if (n == 0) res.result(http::status::request_timeout);
    if (n == 1) res.result(http::status::too_many_requests);
    if (n == 2) res.result(http::status::service_unavailable);
  });
  auto sinks = StartOrDie({WebhookSink(r)});
  sinks->Publish(DecisionLine(1, "allow"));
  sinks->Stop(milliseconds(5000));
  EXPECT_EQ(r.Received().size(), 4u);
  EXPECT_EQ(sinks->stats("hook").delivered, 1u);
  EXPECT_EQ(sinks->stats("hook").failures, 3u);
}

TEST(WebhookSink, HonoursRetryAfter) {
  WebhookReceiver r([](int n, net::HttpResponse& res) {
    if (n == 0) {
      res.result(http::status::too_many_requests);
      res.set(http::field::retry_after, "1");
    }
  });
  auto sinks = StartOrDie({WebhookSink(r)});  // backoff from 10 ms: only Retry-After waits 1 s
  sinks->Publish(DecisionLine(1, "allow"));
  sinks->Stop(milliseconds(5000));
  auto got = r.Received();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_GE(got[1].at - got[0].at, milliseconds(950));
  EXPECT_EQ(sinks->stats("hook").delivered, 1u);
}

TEST(WebhookSink, RetryAfterIsCappedAtBackoffMax) {
  WebhookReceiver r([](int n, net::HttpResponse& res) {
    if (n == 0) {
      res.result(http::status::service_unavailable);
      res.set(http::field::retry_after, "3600");
    }
  });
  SinkOptions o = WebhookSink(r);
  o.backoff_max = milliseconds(50);
  o.batch_interval = milliseconds(1);
  auto sinks = StartOrDie({o});
  sinks->Publish(DecisionLine(1, "allow"));
  ASSERT_TRUE(r.WaitFor(2));  // not an hour later
  sinks->Stop(milliseconds(5000));
  EXPECT_EQ(sinks->stats("hook").delivered, 1u);
}

TEST(WebhookSink, ADeadServerFailsDeliveryAfterMaxAttempts) {
  std::string url;
  {
    WebhookReceiver gone;
    url = gone.Url();
  }  // the port is closed now: connections are refused
  SinkOptions o;
  o.name = "hook";
  o.kind = SinkKind::kWebhook;
  o.url = url;
  o.batch_interval = milliseconds(1);
  o.max_attempts = 3;
  o.backoff_initial = milliseconds(5);
  o.backoff_max = milliseconds(20);
  Logs logs;
  auto sinks = StartOrDie({o}, logs.Fn());
  sinks->Publish(DecisionLine(1, "allow") + DecisionLine(2, "deny"));
  ASSERT_TRUE(WaitUntil([&] { return sinks->stats("hook").dropped_delivery_failed == 2; }));
  sinks->Stop(milliseconds(1000));
  auto s = sinks->stats("hook");
  EXPECT_EQ(s.failures, 3u);
  EXPECT_EQ(s.delivered, 0u);
  EXPECT_EQ(Published(s), 2u);
  EXPECT_NE(logs.All().find("dropped 2 lines after 3 attempts"), std::string::npos) << logs.All();
  EXPECT_EQ(logs.All().find("SECRET"), std::string::npos) << logs.All();
}

// ---------------------------------------------------------------------------------------------
// Buffers, isolation, Stop, metrics

TEST(Sinks, AStalledSinkFillsItsOwnBufferOnlyAndCountsDrops) {
  TempDir dir;
  const std::string path = dir.File("trail.ndjson");
  Gate gate;
  WebhookReceiver r([&](int n, net::HttpResponse&) {
    if (n == 0) gate.Wait();  // the first request hangs until the gate opens
  });
  SinkOptions hook = WebhookSink(r);
  hook.buffer_records = 2;
  hook.batch_records = 1;
  hook.timeout = milliseconds(20000);
  Logs logs;
  auto sinks = StartOrDie({hook, FileSink("trail", path)}, logs.Fn());
  struct OpenOnExit {  // if an assertion ends the test early, let the sink finish its request
    Gate& gate;
    ~OpenOnExit() { gate.Open(); }
  } open_on_exit{gate};

  sinks->Publish(DecisionLine(1, "allow"));
  ASSERT_TRUE(r.WaitFor(1));  // the webhook sink is now stuck in its first request
  std::string rest;
  for (int i = 2; i <= 6; ++i) rest += DecisionLine(i, "allow");
  const auto before = Clock::now();
  sinks->Publish(rest);
  EXPECT_LT(Clock::now() - before, milliseconds(1000));  // Publish does not wait for the sink
  auto s = sinks->stats("hook");
  EXPECT_EQ(s.dropped_buffer_full, 3u);
  EXPECT_EQ(s.queue_depth, 2u);
  // The file sink is not held up by the stalled one.
  const std::string all = DecisionLine(1, "allow") + rest;
  ASSERT_TRUE(WaitUntil([&] { return ReadFile(path) == all; }));
  EXPECT_EQ(sinks->stats("trail").dropped_buffer_full, 0u);

  gate.Open();
  sinks->Stop(milliseconds(5000));
  s = sinks->stats("hook");
  EXPECT_EQ(s.delivered, 3u);
  EXPECT_EQ(Published(s), 6u);
  auto lines = r.Lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1], DecisionLine(2, "allow"));  // the oldest are kept
  EXPECT_NE(logs.All().find("warn: audit sink \"hook\" (webhook http://127.0.0.1:"),
            std::string::npos)
      << logs.All();
  EXPECT_NE(logs.All().find("dropped 3 lines (buffer_full 3); 3 dropped in all"), std::string::npos)
      << logs.All();
}

TEST(Sinks, StopDrainsWhatIsBuffered) {
  TempDir dir;
  WebhookReceiver r;
  SinkOptions hook = WebhookSink(r);  // batch_interval is an hour: only Stop sends the rest
  hook.batch_records = 100;
  auto sinks = StartOrDie({hook, FileSink("trail", dir.File("t.log"))});
  std::string all;
  for (int i = 1; i <= 1050; ++i) all += DecisionLine(i, i % 3 ? "allow" : "deny");
  sinks->Publish(all);
  sinks->Stop(milliseconds(10000));
  auto got = r.Received();
  EXPECT_EQ(got.size(), 11u);
  std::string body;
  for (const auto& req : got) body += req.body;
  EXPECT_EQ(body, all);
  EXPECT_EQ(ReadFile(dir.File("t.log")), all);
  for (std::string name : {"hook", "trail"}) {
    auto s = sinks->stats(name);
    EXPECT_EQ(s.delivered, 1050u) << name;
    EXPECT_EQ(s.dropped_shutdown, 0u) << name;
    EXPECT_EQ(s.queue_depth, 0u) << name;
  }
  sinks->Stop(milliseconds(10000));  // idempotent
}

TEST(Sinks, StopWithoutTimeDropsWhatIsLeftAsShutdown) {
  std::string url;
  {
    WebhookReceiver gone;
    url = gone.Url();
  }
  SinkOptions o;
  o.name = "hook";
  o.kind = SinkKind::kWebhook;
  o.url = url;
  o.batch_records = 2;
  o.backoff_initial = milliseconds(30000);  // the first retry would be long after Stop
  o.backoff_max = milliseconds(60000);
  Logs logs;
  auto sinks = StartOrDie({o}, logs.Fn());
  sinks->Publish(DecisionLine(1, "allow") + DecisionLine(2, "allow") + DecisionLine(3, "allow"));
  ASSERT_TRUE(WaitUntil([&] { return sinks->stats("hook").failures == 1; }));
  const auto before = Clock::now();
  sinks->Stop(milliseconds(0));
  EXPECT_LT(Clock::now() - before, milliseconds(5000));  // not the 15-30 s backoff
  sinks->Publish(DecisionLine(4, "allow"));              // after Stop: dropped, counted
  auto s = sinks->stats("hook");
  EXPECT_EQ(s.dropped_shutdown, 4u);
  EXPECT_EQ(s.delivered, 0u);
  EXPECT_EQ(Published(s), 4u);
  EXPECT_NE(logs.All().find("(shutdown 1); 3 dropped in all"), std::string::npos) << logs.All();
}

TEST(Sinks, AppendMetricsWritesEachFamilyOnceAndEverySeries) {
  TempDir dir;
  auto sinks = StartOrDie({FileSink("a", dir.File("a.log")), FileSink("b-2", dir.File("b.log"))});
  sinks->Publish(DecisionLine(1, "allow") + DecisionLine(2, "deny"));
  sinks->Stop(milliseconds(5000));
  sinks->Publish(DecisionLine(3, "allow"));
  std::string text;
  sinks->AppendMetrics(text);
  const std::string expected =
      "# HELP aegis_audit_sink_delivered_total Audit lines a sink delivered.\n"
      "# TYPE aegis_audit_sink_delivered_total counter\n"
      "aegis_audit_sink_delivered_total{sink=\"a\"} 2\n"
      "aegis_audit_sink_delivered_total{sink=\"b-2\"} 2\n"
      "# HELP aegis_audit_sink_dropped_total Audit lines a sink never delivered, by reason.\n"
      "# TYPE aegis_audit_sink_dropped_total counter\n"
      "aegis_audit_sink_dropped_total{sink=\"a\",reason=\"buffer_full\"} 0\n"
      "aegis_audit_sink_dropped_total{sink=\"a\",reason=\"delivery_failed\"} 0\n"
      "aegis_audit_sink_dropped_total{sink=\"a\",reason=\"shutdown\"} 1\n"
      "aegis_audit_sink_dropped_total{sink=\"b-2\",reason=\"buffer_full\"} 0\n"
      "aegis_audit_sink_dropped_total{sink=\"b-2\",reason=\"delivery_failed\"} 0\n"
      "aegis_audit_sink_dropped_total{sink=\"b-2\",reason=\"shutdown\"} 1\n"
      "# HELP aegis_audit_sink_failures_total Failed delivery attempts of a sink (each retry "
      "counts).\n"
      "# TYPE aegis_audit_sink_failures_total counter\n"
      "aegis_audit_sink_failures_total{sink=\"a\"} 0\n"
      "aegis_audit_sink_failures_total{sink=\"b-2\"} 0\n"
      "# HELP aegis_audit_sink_truncated_total Syslog UDP messages a sink cut to "
      "max_datagram_bytes.\n"
      "# TYPE aegis_audit_sink_truncated_total counter\n"
      "aegis_audit_sink_truncated_total{sink=\"a\"} 0\n"
      "aegis_audit_sink_truncated_total{sink=\"b-2\"} 0\n"
      "# HELP aegis_audit_sink_queue_depth Audit lines waiting in a sink's buffer.\n"
      "# TYPE aegis_audit_sink_queue_depth gauge\n"
      "aegis_audit_sink_queue_depth{sink=\"a\"} 0\n"
      "aegis_audit_sink_queue_depth{sink=\"b-2\"} 0\n";
  EXPECT_EQ(text, expected);

  auto none = StartOrDie({});
  std::string empty;
  none->AppendMetrics(empty);
  none->Publish(DecisionLine(1, "allow"));
  EXPECT_EQ(empty, "");
}

TEST(Sinks, ManyThreadsPublishConcurrently) {
  TempDir dir;
  const std::string path = dir.File("t.log");
  WebhookReceiver r;
  SinkOptions hook = WebhookSink(r);
  hook.batch_records = 64;
  hook.batch_interval = milliseconds(20);
  auto sinks = StartOrDie({hook, FileSink("trail", path)});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 250; ++i) sinks->Publish(DecisionLine(t * 1000 + i, "allow"));
    });
  }
  for (auto& t : threads) t.join();
  sinks->Stop(milliseconds(10000));
  EXPECT_EQ(sinks->stats("hook").delivered, 1000u);
  EXPECT_EQ(r.Lines().size(), 1000u);
  EXPECT_EQ(sinks->stats("trail").delivered, 1000u);
  std::string file = ReadFile(path);
  EXPECT_EQ(std::count(file.begin(), file.end(), '\n'), 1000);
}

}  // namespace
}  // namespace aegis::audit
