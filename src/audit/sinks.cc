#include "audit/sinks.h"

#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "common/files.h"
#include "common/host.h"
#include "common/json.h"
#include "common/strings.h"
#include "net/http_client.h"

namespace aegis::audit {

using Clock = std::chrono::steady_clock;
using common::StrCat;
using std::chrono::milliseconds;

namespace {

constexpr size_t kMaxNameBytes = 64;
constexpr int kMaxFacility = 23;
constexpr size_t kMinDatagramBytes = 480;    // RFC 5426: every receiver takes this much
constexpr size_t kMaxDatagramBytes = 65507;  // the largest UDP payload over IPv4
constexpr size_t kMaxHostnameBytes = 255;    // RFC 5424 header field limits
constexpr size_t kMaxAppNameBytes = 48;
constexpr size_t kMaxSdValueBytes = 256;  // keeps the header small enough for a datagram
// Audit lines are at most 4 MiB (docs/audit.md); anything larger is not a record, and its
// message goes out with NILVALUEs rather than costing a parse.
constexpr size_t kMaxParsedLineBytes = 8 << 20;
constexpr std::string_view kNdjson = "application/x-ndjson";
constexpr auto kLogEvery = std::chrono::seconds(1);

// Up to 64 bytes of `s` with anything outside printable ASCII shown as '?', for an error message
// quoting a bad value.
std::string Printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (s.size() > 64) out += "...";
  return out;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

// The length of the longest prefix of `s` of at most `max` bytes that does not end inside a
// UTF-8 sequence (backing off at most three continuation bytes, so hostile bytes cannot make
// it back off further).
size_t Utf8Prefix(std::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t n = max;
  for (int i = 0; i < 3 && n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80; ++i) --n;
  return (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80 ? max : n;
}

// Splits "host:port" / "[v6]:port" into a host for getaddrinfo (no brackets) and a port.
common::Status ParseSyslogAddress(std::string_view address, std::string* host, int* port) {
  if (address.empty()) return common::InvalidArgumentError("is empty");
  int p = 0;
  auto normalized = common::NormalizeHost(address, &p);
  if (!normalized.ok()) return normalized.status();
  if (p == 0) return common::InvalidArgumentError("has no port (host:port or [v6]:port)");
  std::string h = std::move(*normalized);
  if (h.size() > 2 && h.front() == '[') h = h.substr(1, h.size() - 2);
  if (host) *host = std::move(h);
  if (port) *port = p;
  return common::OkStatus();
}

// RFC 5424 header fields: PRINTUSASCII only, within their length, NILVALUE when empty.
void AppendHeaderField(std::string& out, std::string_view value, size_t max) {
  if (value.empty()) {
    out += '-';
    return;
  }
  for (char c : value.substr(0, max)) {
    out += (c >= 33 && c <= 126) ? c : '_';
  }
}

void AppendSdParam(std::string& out, std::string_view name, const common::Json* value) {
  out += ' ';
  out += name;
  out += "=\"";
  if (!value || !value->is_string()) {
    out += '-';
  } else {
    // The parser guarantees valid UTF-8; the cut keeps it so.
    std::string_view s = value->as_string();
    for (char c : s.substr(0, Utf8Prefix(s, kMaxSdValueBytes))) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) {
        out += '_';
        continue;
      }
      if (c == '"' || c == '\\' || c == ']') out += '\\';
      out += c;
    }
  }
  out += '"';
}

// RFC 3339, UTC, microseconds: 2026-01-01T00:00:00.123456Z.
void AppendTimestamp(std::string& out, int64_t unix_nanos) {
  unix_nanos = std::max<int64_t>(unix_nanos, 0);
  time_t seconds = static_cast<time_t>(unix_nanos / 1000000000);
  int micros = static_cast<int>((unix_nanos % 1000000000) / 1000);
  struct tm tm {};
  gmtime_r(&seconds, &tm);
  char buf[64];
  int n = std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
  out.append(buf, static_cast<size_t>(std::clamp(n, 0, static_cast<int>(sizeof(buf) - 1))));
}

int64_t NowUnixNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatDelay(milliseconds d) {
  if (d.count() % 1000 == 0) return StrCat(d.count() / 1000, "s");
  return StrCat(d.count(), "ms");
}

std::string Lines(uint64_t n) { return StrCat(n, n == 1 ? " line" : " lines"); }

// Retry-After in delta-seconds; nullopt for anything else (an HTTP-date falls back to backoff).
std::optional<milliseconds> ParseRetryAfter(const std::string* value) {
  if (!value || value->empty() || value->size() > 9) return std::nullopt;
  int64_t seconds = 0;
  for (char c : *value) {
    if (c < '0' || c > '9') return std::nullopt;
    seconds = seconds * 10 + (c - '0');
  }
  return milliseconds(seconds * 1000);
}

// The start of an error body as printable ASCII, for a log line.
std::string Snippet(std::string_view body) {
  std::string out;
  for (char c : body.substr(0, 200)) out += (c >= 0x20 && c < 0x7f) ? c : ' ';
  return out;
}

// Waits until `fd` can take more bytes or `deadline` passes; false on the deadline. An error or
// hang-up counts as ready: the next write reports it.
bool WaitWritable(int fd, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::ceil<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    struct pollfd p {};
    p.fd = fd;
    p.events = POLLOUT;
    int n = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), INT_MAX)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;
  }
}

std::string ErrnoText(int err) { return std::strerror(err); }

// Lets a kind of log line through at most once a second; the ones held back are counted in the
// next one let through.
class LogLimiter {
 public:
  // Returns the suffix to append (empty, or how many were held back), or nullopt to hold
  // this one back.
  std::optional<std::string> Admit(Clock::time_point now) {
    if (admitted_ && now - last_ < kLogEvery) {
      ++held_;
      return std::nullopt;
    }
    std::string suffix;
    if (held_ > 0) {
      suffix =
          StrCat(" (", held_, held_ == 1 ? " similar message" : " similar messages", " held back)");
    }
    held_ = 0;
    admitted_ = true;
    last_ = now;
    return suffix;
  }

 private:
  bool admitted_ = false;
  Clock::time_point last_;
  uint64_t held_ = 0;
};

// One line waiting in a sink's buffer, and when it arrived (the webhook's batch timer).
struct Entry {
  std::string line;
  Clock::time_point at;
};

// The lines of one delivery, and how far the attempts so far got through them.
struct Batch {
  std::vector<std::string> lines;  // each ends in '\n'
  size_t done_lines = 0;           // delivered
  size_t done_bytes = 0;           // of lines[done_lines], already written (a short write)
};

struct Outcome {
  enum class Result { kDelivered, kRetry, kGiveUp };
  Result result = Result::kDelivered;
  std::string reason;  // why not delivered, for a log line
  std::optional<milliseconds> retry_after;
};

Outcome Retry(std::string reason) {
  return Outcome{Outcome::Result::kRetry, std::move(reason), std::nullopt};
}

// How one kind of sink delivers a batch. Used by its sink's thread only.
class Transport {
 public:
  virtual ~Transport() = default;
  // Delivers batch.lines from done_lines (and done_bytes) on, advancing them as lines get
  // through, within `timeout`. kDelivered once every line is through.
  virtual Outcome Deliver(Batch& batch, milliseconds timeout) = 0;
  // The sink gives up on `batch` (what is not done is dropped).
  virtual void Abandon(const Batch& batch) { (void)batch; }
  // kFile: opens the path again; on error keeps the old file and returns the error.
  virtual common::Status Reopen() { return common::OkStatus(); }
};

// kFile and kStdout: write(2) of whole batches.
class FileTransport : public Transport {
 public:
  // An empty path is stdout (fd 1, never closed).
  explicit FileTransport(std::string path) : path_(std::move(path)) {}
  ~FileTransport() override {
    if (!path_.empty() && fd_ >= 0) ::close(fd_);
  }

  common::Status Open() {
    int fd = -1;
    bool regular = false;
    if (auto s = OpenPath(&fd, &regular); !s.ok()) return s;
    fd_ = fd;
    regular_ = regular;
    return common::OkStatus();
  }

  common::Status Reopen() override {
    if (path_.empty()) return common::OkStatus();
    int fd = -1;
    bool regular = false;
    if (auto s = OpenPath(&fd, &regular); !s.ok()) return s;
    ::close(fd_);
    fd_ = fd;
    regular_ = regular;
    torn_ = false;  // a new file starts clean
    return common::OkStatus();
  }

  Outcome Deliver(Batch& batch, milliseconds timeout) override {
    const Clock::time_point deadline = Clock::now() + timeout;
    if (torn_) {
      // A batch given up on left half a line: end it, so the lines after it stay whole.
      size_t written = 0;
      if (auto s = WriteAll("\n", deadline, &written); !s.ok()) return Retry(s.message());
      torn_ = false;
    }
    std::string body;
    for (size_t i = batch.done_lines; i < batch.lines.size(); ++i) {
      body.append(batch.lines[i], i == batch.done_lines ? batch.done_bytes : 0);
    }
    size_t written = 0;
    common::Status s = WriteAll(body, deadline, &written);
    // Account for what got out, so a retry resumes after it.
    while (written > 0 && batch.done_lines < batch.lines.size()) {
      size_t left = batch.lines[batch.done_lines].size() - batch.done_bytes;
      if (written < left) {
        batch.done_bytes += written;
        break;
      }
      written -= left;
      ++batch.done_lines;
      batch.done_bytes = 0;
    }
    if (!s.ok()) return Retry(s.message());
    return Outcome{};
  }

  void Abandon(const Batch& batch) override {
    if (batch.done_bytes > 0) torn_ = true;
  }

 private:
  common::Status OpenPath(int* fd, bool* regular) const {
    if (path_.empty()) {
      *fd = STDOUT_FILENO;
    } else {
      *fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
      if (*fd < 0) return common::ErrnoError("cannot open", path_);
    }
    struct stat st {};
    *regular = ::fstat(*fd, &st) == 0 && S_ISREG(st.st_mode);
    return common::OkStatus();
  }

  // Writes all of `data`, looping over short writes and EINTR. A regular file is written as
  // is (the timeout cannot apply); a pipe, terminal or socket (stdout) is waited on with poll
  // and written at most PIPE_BUF bytes at a time, which a writable pipe takes without blocking
  // and in one piece: each write ends at a line's end when one fits, so other writers sharing
  // the pipe (log lines on stderr under systemd or a container runtime) cannot land inside a
  // line of at most PIPE_BUF bytes.
  common::Status WriteAll(std::string_view data, Clock::time_point deadline, size_t* written) {
    *written = 0;
    while (*written < data.size()) {
      if (!regular_ && !WaitWritable(fd_, deadline)) {
        return common::UnavailableError(StrCat("write to ", Where(), ": timed out"));
      }
      size_t chunk = data.size() - *written;
      if (!regular_ && chunk > PIPE_BUF) {
        size_t end = data.substr(*written, PIPE_BUF).rfind('\n');
        chunk = end == std::string_view::npos ? PIPE_BUF : end + 1;
      }
      ssize_t n = ::write(fd_, data.data() + *written, chunk);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
        return common::UnavailableError(StrCat("write to ", Where(), ": ", ErrnoText(errno)));
      }
      *written += static_cast<size_t>(n);
    }
    return common::OkStatus();
  }

  std::string Where() const { return path_.empty() ? std::string("stdout") : path_; }

  const std::string path_;
  int fd_ = -1;
  bool regular_ = false;
  bool torn_ = false;  // the file ends in part of a line
};

// kSyslog: RFC 5424 messages over UDP (RFC 5426) or TCP with octet counting (RFC 6587).
class SyslogTransport : public Transport {
 public:
  SyslogTransport(const SinkOptions& options, std::string host, int port,
                  std::atomic<uint64_t>* truncated)
      : tcp_(options.tcp),
        facility_(options.facility),
        app_name_(options.app_name),
        max_datagram_(options.max_datagram_bytes),
        host_(std::move(host)),
        port_(port),
        truncated_(truncated),
        procid_(static_cast<int64_t>(::getpid())) {
    hostname_ = options.hostname;
    if (hostname_.empty()) {
      char buf[HOST_NAME_MAX + 1] = {};
      if (::gethostname(buf, sizeof(buf) - 1) == 0) hostname_ = buf;
    }
  }
  ~SyslogTransport() override { Close(); }

  Outcome Deliver(Batch& batch, milliseconds timeout) override {
    const Clock::time_point deadline = Clock::now() + timeout;
    if (fd_ >= 0 && tcp_ && PeerClosed()) Close();
    if (fd_ < 0) {
      if (auto s = Connect(deadline); !s.ok()) return Retry(s.message());
    }
    for (; batch.done_lines < batch.lines.size(); ++batch.done_lines) {
      std::string message = FormatSyslogMessage(batch.lines[batch.done_lines], facility_, hostname_,
                                                app_name_, procid_, NowUnixNanos());
      common::Status s;
      bool cut = false;
      if (tcp_) {
        s = SendStream(StrCat(message.size(), " ", message), deadline);
      } else {
        if (message.size() > max_datagram_) {
          message.resize(Utf8Prefix(message, max_datagram_));
          cut = true;
        }
        s = SendDatagram(message, deadline);
      }
      if (!s.ok()) {
        Close();  // reconnect (and resolve again) on the next attempt
        return Retry(s.message());
      }
      if (cut) truncated_->fetch_add(1, std::memory_order_relaxed);
    }
    return Outcome{};
  }

 private:
  std::string Where() const {
    return StrCat(tcp_ ? "tcp " : "udp ",
                  host_.find(':') == std::string::npos ? host_ : StrCat("[", host_, "]"), ":",
                  port_);
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Syslog receivers never send; a readable connection has been closed or reset by the peer
  // (or carries bytes to discard). Finds that out before writing into a dead connection.
  bool PeerClosed() {
    char buf[512];
    for (int i = 0; i < 64; ++i) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) continue;
      if (n == 0) return true;
      if (errno == EINTR) continue;
      return errno != EAGAIN && errno != EWOULDBLOCK;
    }
    return false;
  }

  // Resolves the address again and connects (TCP) or opens a socket for it (UDP), by the
  // deadline. Name resolution itself (getaddrinfo) cannot be bounded by it.
  common::Status Connect(Clock::time_point deadline) {
    struct addrinfo hints {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = tcp_ ? SOCK_STREAM : SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo* found = nullptr;
    std::string port = std::to_string(port_);
    int rc = ::getaddrinfo(host_.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) {
      return common::UnavailableError(StrCat(
          "resolve ", Where(), ": ", rc == EAI_SYSTEM ? ErrnoText(errno) : gai_strerror(rc)));
    }
    std::string error = "no address";
    for (struct addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
      int fd =
          ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) {
        error = ErrnoText(errno);
        continue;
      }
      if (!tcp_) {
        std::memcpy(&addr_, ai->ai_addr, ai->ai_addrlen);
        addr_len_ = ai->ai_addrlen;
        fd_ = fd;
        break;
      }
      int c = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
      if (c != 0 && errno == EINPROGRESS) {
        if (!WaitWritable(fd, deadline)) {
          ::close(fd);
          error = "connect timed out";
          break;  // no time left for the other addresses
        }
        int err = 0;
        socklen_t len = sizeof(err);
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        c = err == 0 ? 0 : -1;
        errno = err;
      }
      if (c == 0) {
        fd_ = fd;
        break;
      }
      error = ErrnoText(errno);
      ::close(fd);
    }
    ::freeaddrinfo(found);
    if (fd_ < 0) return common::UnavailableError(StrCat("connect to ", Where(), ": ", error));
    return common::OkStatus();
  }

  common::Status SendStream(std::string_view data, Clock::time_point deadline) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!WaitWritable(fd_, deadline)) {
          return common::UnavailableError(StrCat("send to ", Where(), ": timed out"));
        }
        continue;
      }
      return common::UnavailableError(StrCat("send to ", Where(), ": ", ErrnoText(errno)));
    }
    return common::OkStatus();
  }

  common::Status SendDatagram(std::string_view message, Clock::time_point deadline) {
    while (true) {
      ssize_t n = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                           reinterpret_cast<const struct sockaddr*>(&addr_), addr_len_);
      if (n >= 0) return common::OkStatus();
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!WaitWritable(fd_, deadline)) {
          return common::UnavailableError(StrCat("send to ", Where(), ": timed out"));
        }
        continue;
      }
      return common::UnavailableError(StrCat("send to ", Where(), ": ", ErrnoText(errno)));
    }
  }

  const bool tcp_;
  const int facility_;
  const std::string app_name_;
  const size_t max_datagram_;
  const std::string host_;
  const int port_;
  std::atomic<uint64_t>* const truncated_;
  const int64_t procid_;
  std::string hostname_;
  int fd_ = -1;
  struct sockaddr_storage addr_ {};  // UDP: where datagrams go
  socklen_t addr_len_ = 0;
};

// kWebhook: one POST of NDJSON per batch.
class WebhookTransport : public Transport {
 public:
  explicit WebhookTransport(const SinkOptions& options)
      : url_(options.url), ca_file_(options.ca_file) {
    headers_.emplace_back("Content-Type", std::string(kNdjson));
    for (const auto& h : options.headers) headers_.push_back(h);
  }

  Outcome Deliver(Batch& batch, milliseconds timeout) override {
    net::FetchRequest request;
    request.method = "POST";
    request.url = url_;
    request.headers = headers_;
    for (size_t i = batch.done_lines; i < batch.lines.size(); ++i) {
      request.body += batch.lines[i];
    }
    request.timeout = timeout;
    request.ca_file = ca_file_;
    auto response = net::Fetch(request);
    Outcome out;
    if (!response.ok()) {
      // Unavailable (resolution, connect, TLS, timeout) may pass; anything else will not.
      out.result = response.status().code() == common::StatusCode::kUnavailable
                       ? Outcome::Result::kRetry
                       : Outcome::Result::kGiveUp;
      out.reason = response.status().message();  // names the origin only
      return out;
    }
    const int status = response->status;
    if (status >= 200 && status < 300) {
      batch.done_lines = batch.lines.size();
      return out;
    }
    out.reason = StrCat("HTTP ", status);
    if (!response->body.empty()) out.reason += StrCat(": ", Snippet(response->body));
    if (status == 408 || status == 429 || (status >= 500 && status < 600)) {
      out.result = Outcome::Result::kRetry;
      out.retry_after = ParseRetryAfter(response->Header("Retry-After"));
    } else {
      out.result = Outcome::Result::kGiveUp;
    }
    return out;
  }

 private:
  const std::string url_;
  const std::string ca_file_;
  std::vector<std::pair<std::string, std::string>> headers_;
};

// One sink: its buffer, its thread and its counters.
struct Sink {
  SinkOptions options;
  std::string where;  // `audit sink "NAME" (target)`: the prefix of its log lines
  const Sinks::LogFn* log = nullptr;
  std::unique_ptr<Transport> transport;

  mutable std::mutex mu;
  std::condition_variable wake;
  std::deque<Entry> queue;
  bool stopping = false;  // Stop called: no new lines, deliver until drain_deadline
  Clock::time_point drain_deadline;
  bool reopen_requested = false;
  bool finished = false;  // the worker has ended; Accept logs later drops itself
  std::thread worker;

  std::atomic<uint64_t> delivered{0}, dropped_buffer_full{0}, dropped_delivery_failed{0},
      dropped_shutdown{0}, failures{0}, truncated{0};

  // The worker's own (the drop log's state passes to Accept, under mu, once finished).
  std::mt19937_64 rng{std::random_device{}()};
  bool reopen_pending = false;  // a Reopen failed: try again before the next batch
  uint64_t logged_buffer_full = 0, logged_delivery_failed = 0, logged_shutdown = 0;
  bool drops_logged = false;
  Clock::time_point last_drop_log;
  LogLimiter retry_log, error_log;  // a failed attempt to be retried; a batch given up on

  void Log(std::string_view level, const std::string& message) const {
    if (*log) (*log)(level, message);
  }

  static uint64_t Load(const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); }

  // Takes `lines` into the buffer as far as they fit. Any thread.
  void Accept(std::vector<Entry>& entries) {
    std::unique_lock<std::mutex> lock(mu);
    if (stopping) {
      // Counted under the lock: before the worker's last drop report, or after it ended, when
      // the report is made here (still at most once a second).
      dropped_shutdown.fetch_add(entries.size(), std::memory_order_relaxed);
      if (finished) LogDrops(false);
      return;
    }
    const bool was_empty = queue.empty();
    const size_t room = options.buffer_records - std::min(queue.size(), options.buffer_records);
    const size_t take = std::min(room, entries.size());
    for (size_t i = 0; i < take; ++i) queue.push_back(std::move(entries[i]));
    const size_t depth = queue.size();
    lock.unlock();
    const size_t dropped = entries.size() - take;
    if (dropped > 0) dropped_buffer_full.fetch_add(dropped, std::memory_order_relaxed);
    // The worker waits for a first line (and, for a webhook, a full batch); a drop wakes it to
    // log it.
    if ((was_empty && take > 0) || depth >= options.batch_records || dropped > 0) {
      wake.notify_one();
    }
  }

  bool HasUnloggedDrops() const {
    return Load(dropped_buffer_full) != logged_buffer_full ||
           Load(dropped_delivery_failed) != logged_delivery_failed ||
           Load(dropped_shutdown) != logged_shutdown;
  }

  Clock::time_point NextDropLog() const {
    return drops_logged ? last_drop_log + kLogEvery : Clock::time_point::min();
  }

  // Logs the drops since the last report, at most once a second unless `force`. Worker only.
  void LogDrops(bool force) {
    if (!HasUnloggedDrops()) return;
    const Clock::time_point now = Clock::now();
    if (!force && now < NextDropLog()) return;
    uint64_t full = Load(dropped_buffer_full), failed = Load(dropped_delivery_failed),
             shutdown = Load(dropped_shutdown);
    std::string reasons;
    auto add = [&](std::string_view reason, uint64_t n) {
      if (n == 0) return;
      reasons += StrCat(reasons.empty() ? "" : ", ", reason, " ", n);
    };
    add("buffer_full", full - logged_buffer_full);
    add("delivery_failed", failed - logged_delivery_failed);
    add("shutdown", shutdown - logged_shutdown);
    uint64_t n = (full - logged_buffer_full) + (failed - logged_delivery_failed) +
                 (shutdown - logged_shutdown);
    Log("warn", StrCat(where, ": dropped ", Lines(n), " (", reasons, "); ",
                       full + failed + shutdown, " dropped in all"));
    logged_buffer_full = full;
    logged_delivery_failed = failed;
    logged_shutdown = shutdown;
    drops_logged = true;
    last_drop_log = now;
  }

  // Logs a failure at most once a second per level ("warn": an attempt to be retried,
  // "error": lines given up on); the drop counts reach the log through LogDrops regardless.
  // Worker only.
  void LogFailure(std::string_view level, const std::string& message) {
    LogLimiter& limiter = level == "error" ? error_log : retry_log;
    std::optional<std::string> suffix = limiter.Admit(Clock::now());
    if (suffix) Log(level, StrCat(where, ": ", message, *suffix));
  }

  void DoReopen() {
    common::Status s = transport->Reopen();
    if (s.ok()) {
      reopen_pending = false;
      Log("info", StrCat(where, ": reopened"));
    } else {
      reopen_pending = true;
      LogFailure("error",
                 StrCat("cannot reopen: ", s.message(), "; still writing to the old file"));
    }
  }

  // Delivers one batch, retrying. Worker only, without the lock.
  void Deliver(Batch& batch) {
    const uint64_t n = batch.lines.size();
    for (int attempt = 1;; ++attempt) {
      milliseconds timeout = options.timeout;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stopping) {
          auto left = std::chrono::duration_cast<milliseconds>(drain_deadline - Clock::now());
          timeout = std::min(timeout, std::max(milliseconds(1), left));
        }
      }
      const size_t done_before = batch.done_lines;
      Outcome outcome = transport->Deliver(batch, timeout);
      delivered.fetch_add(batch.done_lines - done_before, std::memory_order_relaxed);
      if (outcome.result == Outcome::Result::kDelivered) {
        if (attempt > 1) {
          Log("info", StrCat(where, ": ", Lines(n), " delivered on attempt ", attempt));
        }
        return;
      }
      failures.fetch_add(1, std::memory_order_relaxed);
      if (outcome.result == Outcome::Result::kRetry && attempt < options.max_attempts) {
        milliseconds delay = outcome.retry_after
                                 ? std::min(*outcome.retry_after, options.backoff_max)
                                 : common::JitteredBackoff(attempt, options.backoff_initial,
                                                           options.backoff_max, rng);
        LogFailure("warn", StrCat("attempt ", attempt, " of ", options.max_attempts, " failed: ",
                                  outcome.reason, "; retrying in ", FormatDelay(delay)));
        const Clock::time_point retry_at = Clock::now() + delay;
        std::unique_lock<std::mutex> lock(mu);
        // Stop may end the wait: a retry that would fall after the drain deadline is not made.
        bool cut =
            wake.wait_until(lock, retry_at, [&] { return stopping && drain_deadline < retry_at; });
        lock.unlock();
        if (!cut) continue;
        dropped_shutdown.fetch_add(n - batch.done_lines, std::memory_order_relaxed);
        transport->Abandon(batch);
        return;
      }
      dropped_delivery_failed.fetch_add(n - batch.done_lines, std::memory_order_relaxed);
      transport->Abandon(batch);
      LogFailure("error", StrCat("dropped ", Lines(n - batch.done_lines), " after ", attempt,
                                 attempt == 1 ? " attempt: " : " attempts: ", outcome.reason));
      return;
    }
  }

  void Run() {
    // A write to a closed pipe (stdout) then fails with EPIPE instead of killing the process.
    sigset_t sigpipe;
    sigemptyset(&sigpipe);
    sigaddset(&sigpipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigpipe, nullptr);

    const bool batches_wait = options.kind == SinkKind::kWebhook;
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      // Wait for lines to deliver (a webhook: a full batch, or its first line's interval over),
      // a reopen, or Stop; log drops meanwhile. Everything the wait depends on is read under
      // the lock it waits with, so no wake-up is lost; after work done without the lock the
      // loop starts over.
      while (!stopping) {
        if (reopen_requested) {
          reopen_requested = false;
          lock.unlock();
          DoReopen();
          lock.lock();
          continue;
        }
        const Clock::time_point now = Clock::now();
        if (HasUnloggedDrops() && now >= NextDropLog()) {
          lock.unlock();
          LogDrops(false);
          lock.lock();
          continue;
        }
        std::optional<Clock::time_point> until;
        if (!queue.empty()) {
          if (!batches_wait || queue.size() >= options.batch_records) break;
          const Clock::time_point due = queue.front().at + options.batch_interval;
          if (now >= due) break;
          until = due;
        }
        if (HasUnloggedDrops()) until = until ? std::min(*until, NextDropLog()) : NextDropLog();
        if (until) {
          wake.wait_until(lock, *until);
        } else {
          wake.wait(lock);
        }
      }
      if (stopping && (queue.empty() || Clock::now() >= drain_deadline)) break;
      Batch batch;
      const size_t take = std::min(queue.size(), options.batch_records);
      batch.lines.reserve(take);
      for (size_t i = 0; i < take; ++i) {
        batch.lines.push_back(std::move(queue.front().line));
        queue.pop_front();
      }
      // Checked with the take, under the lock: lines published after Reopen returned go to
      // the new file.
      const bool reopen = std::exchange(reopen_requested, false);
      lock.unlock();
      if (reopen || reopen_pending) DoReopen();
      Deliver(batch);
      LogDrops(false);
      lock.lock();
    }
    const size_t left = queue.size();
    queue.clear();
    dropped_shutdown.fetch_add(left, std::memory_order_relaxed);
    LogDrops(true);  // under the lock, so drops Accept counts after it are reported there
    finished = true;
  }

  Sinks::Stats stats() const {
    Sinks::Stats s;
    s.delivered = Load(delivered);
    s.dropped_buffer_full = Load(dropped_buffer_full);
    s.dropped_delivery_failed = Load(dropped_delivery_failed);
    s.dropped_shutdown = Load(dropped_shutdown);
    s.failures = Load(failures);
    s.truncated = Load(truncated);
    std::lock_guard<std::mutex> lock(mu);
    s.queue_depth = queue.size();
    return s;
  }
};

}  // namespace

common::Status ValidateSinkOptions(const SinkOptions& o) {
  if (!IsValidName(o.name)) {
    return common::InvalidArgumentError(
        StrCat("audit sink name \"", Printable(o.name),
               "\": must be 1 to 64 characters of a-z, 0-9, '_' and '-'"));
  }
  auto bad = [&](std::string_view field, std::string_view why) {
    return common::InvalidArgumentError(StrCat("audit sink \"", o.name, "\": ", field, " ", why));
  };
  switch (o.kind) {
    case SinkKind::kFile:
      if (o.path.empty()) return bad("path", "is empty");
      if (o.path.find('\0') != std::string::npos) return bad("path", "contains a NUL byte");
      break;
    case SinkKind::kStdout:
      break;
    case SinkKind::kSyslog: {
      if (auto s = ParseSyslogAddress(o.address, nullptr, nullptr); !s.ok()) {
        return bad("address", StrCat("\"", Printable(o.address), "\": ", s.message()));
      }
      if (o.facility < 0 || o.facility > kMaxFacility) return bad("facility", "must be 0 to 23");
      if (!o.tcp &&
          (o.max_datagram_bytes < kMinDatagramBytes || o.max_datagram_bytes > kMaxDatagramBytes)) {
        return bad("max_datagram_bytes", "must be 480 to 65507");
      }
      break;
    }
    case SinkKind::kWebhook: {
      auto url = net::ParseUrl(o.url);
      if (!url.ok()) return bad("url", StrCat("is invalid: ", url.status().message()));
      for (const auto& [name, value] : o.headers) {
        if (strcasecmp(name.c_str(), "Content-Type") == 0) {
          return bad("headers", "may not set Content-Type (the sink sends application/x-ndjson)");
        }
        if (auto s = net::CheckHeader(name, value); !s.ok()) return bad("headers", s.message());
      }
      break;
    }
    default:
      return bad("kind", "is unknown");
  }
  if (o.buffer_records == 0) return bad("buffer_records", "must be at least 1");
  if (o.batch_records == 0) return bad("batch_records", "must be at least 1");
  if (o.batch_interval <= milliseconds(0)) return bad("batch_interval", "must be positive");
  if (o.timeout <= milliseconds(0)) return bad("timeout", "must be positive");
  if (o.max_attempts < 1) return bad("max_attempts", "must be at least 1");
  if (o.backoff_initial <= milliseconds(0)) return bad("backoff_initial", "must be positive");
  if (o.backoff_max < o.backoff_initial) {
    return bad("backoff_max", "must not be below backoff_initial");
  }
  return common::OkStatus();
}

std::string FormatSyslogMessage(std::string_view line, int facility, std::string_view hostname,
                                std::string_view app_name, int64_t procid, int64_t now_unix_nanos) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  std::optional<common::Json> parsed;
  if (line.size() <= kMaxParsedLineBytes) {
    common::JsonLimits limits;
    limits.max_bytes = kMaxParsedLineBytes;
    auto json = common::ParseJson(line, limits);
    if (json.ok() && json->is_object()) parsed = std::move(*json);
  }
  auto field = [&](std::string_view key) -> const common::Json* {
    return parsed ? parsed->Find(key) : nullptr;
  };
  const common::Json* decision = field("decision");
  const bool is_decision = decision != nullptr && decision->is_string();
  int severity = 4;  // warning: events, and anything not understood
  if (is_decision) {
    const std::string& d = decision->as_string();
    if (d == "approval_needed") severity = 5;
    if (d == "allow" || d == "sanitize") severity = 6;
  }
  int64_t at = now_unix_nanos;
  if (const common::Json* time = field("time"); time && time->is_int() && time->as_int() >= 0) {
    at = time->as_int();
  }

  std::string out;
  out.reserve(line.size() + 256);
  out += StrCat("<", std::clamp(facility, 0, kMaxFacility) * 8 + severity, ">1 ");
  AppendTimestamp(out, at);
  out += ' ';
  AppendHeaderField(out, hostname, kMaxHostnameBytes);
  out += ' ';
  AppendHeaderField(out, app_name, kMaxAppNameBytes);
  out += StrCat(" ", procid, " ", is_decision ? "decision" : "event", " [aegis@32473");
  AppendSdParam(out, "decision_id", field("decision_id"));
  AppendSdParam(out, "agent", field("agent"));
  AppendSdParam(out, "tenant", field("tenant"));
  AppendSdParam(out, "decision", decision);
  out += ']';
  if (!line.empty()) {
    out += ' ';
    out += line;
  }
  return out;
}

struct Sinks::Impl {
  LogFn log;
  std::vector<std::unique_ptr<Sink>> sinks;
  std::mutex stop_mu;  // serialises Stop
};

Sinks::Sinks(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Sinks::~Sinks() { Stop(milliseconds(0)); }

common::StatusOr<std::unique_ptr<Sinks>> Sinks::Start(std::vector<SinkOptions> options, LogFn log) {
  auto impl = std::make_unique<Impl>();
  impl->log = std::move(log);
  std::set<std::string, std::less<>> names;
  for (const SinkOptions& o : options) {
    if (auto s = ValidateSinkOptions(o); !s.ok()) return s;
    if (!names.insert(o.name).second) {
      return common::InvalidArgumentError(
          StrCat("audit sink \"", o.name, "\": name is used by another sink"));
    }
  }
  for (SinkOptions& o : options) {
    auto sink = std::make_unique<Sink>();
    sink->log = &impl->log;
    switch (o.kind) {
      case SinkKind::kFile:
      case SinkKind::kStdout: {
        auto file = std::make_unique<FileTransport>(o.kind == SinkKind::kFile ? o.path : "");
        if (auto s = file->Open(); !s.ok()) {
          return common::Status(s.code(), StrCat("audit sink \"", o.name, "\": ", s.message()));
        }
        sink->where = o.kind == SinkKind::kFile
                          ? StrCat("audit sink \"", o.name, "\" (file ", o.path, ")")
                          : StrCat("audit sink \"", o.name, "\" (stdout)");
        sink->transport = std::move(file);
        break;
      }
      case SinkKind::kSyslog: {
        std::string host;
        int port = 0;
        if (auto s = ParseSyslogAddress(o.address, &host, &port); !s.ok()) return s;
        sink->where =
            StrCat("audit sink \"", o.name, "\" (syslog ", o.tcp ? "tcp " : "udp ", o.address, ")");
        sink->transport =
            std::make_unique<SyslogTransport>(o, std::move(host), port, &sink->truncated);
        break;
      }
      case SinkKind::kWebhook: {
        if (!o.ca_file.empty() && ::access(o.ca_file.c_str(), R_OK) != 0) {
          return common::InvalidArgumentError(
              StrCat("audit sink \"", o.name, "\": ca_file ", o.ca_file, ": ", ErrnoText(errno)));
        }
        auto url = net::ParseUrl(o.url);  // validated above
        sink->where = StrCat("audit sink \"", o.name, "\" (webhook ", url->Origin(), ")");
        sink->transport = std::make_unique<WebhookTransport>(o);
        break;
      }
    }
    sink->options = std::move(o);
    impl->sinks.push_back(std::move(sink));
  }
  for (auto& sink : impl->sinks) {
    sink->worker = std::thread([s = sink.get()] { s->Run(); });
  }
  return std::unique_ptr<Sinks>(new Sinks(std::move(impl)));
}

void Sinks::Publish(std::string_view lines) {
  if (impl_->sinks.empty() || lines.empty()) return;
  std::vector<std::string_view> split;
  while (!lines.empty()) {
    size_t end = lines.find('\n');
    std::string_view line = lines.substr(0, end);
    lines.remove_prefix(end == std::string_view::npos ? lines.size() : end + 1);
    if (!line.empty()) split.push_back(line);
  }
  if (split.empty()) return;
  const Clock::time_point now = Clock::now();
  std::vector<Entry> entries;
  for (auto& sink : impl_->sinks) {
    // Copied outside the sink's lock, so the lock is held only to move them in.
    entries.clear();
    entries.reserve(split.size());
    for (std::string_view line : split) {
      std::string copy;
      copy.reserve(line.size() + 1);
      copy.append(line);
      copy += '\n';
      entries.push_back(Entry{std::move(copy), now});
    }
    sink->Accept(entries);
  }
}

void Sinks::Stop(milliseconds drain) {
  std::lock_guard<std::mutex> stop_lock(impl_->stop_mu);
  const Clock::time_point deadline = Clock::now() + std::max(drain, milliseconds(0));
  for (auto& sink : impl_->sinks) {
    {
      std::lock_guard<std::mutex> lock(sink->mu);
      if (!sink->stopping) {
        sink->stopping = true;
        sink->drain_deadline = deadline;
      }
    }
    sink->wake.notify_all();
  }
  // All sinks drain at once; each thread ends by its deadline (or its attempt's timeout).
  for (auto& sink : impl_->sinks) {
    if (sink->worker.joinable()) sink->worker.join();
  }
}

void Sinks::Reopen() {
  for (auto& sink : impl_->sinks) {
    if (sink->options.kind != SinkKind::kFile) continue;
    {
      std::lock_guard<std::mutex> lock(sink->mu);
      sink->reopen_requested = true;
    }
    sink->wake.notify_one();
  }
}

void Sinks::AppendMetrics(std::string& out) const {
  if (impl_->sinks.empty()) return;
  std::vector<Stats> all;
  all.reserve(impl_->sinks.size());
  for (const auto& sink : impl_->sinks) all.push_back(sink->stats());
  auto family = [&](std::string_view name, std::string_view type, std::string_view help) {
    out += StrCat("# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
  };
  auto series = [&](std::string_view name, size_t i, std::string_view extra, uint64_t value) {
    out += StrCat(name, "{sink=\"", impl_->sinks[i]->options.name, "\"", extra, "} ", value, "\n");
  };
  const size_t n = all.size();
  family("aegis_audit_sink_delivered_total", "counter", "Audit lines a sink delivered.");
  for (size_t i = 0; i < n; ++i)
    series("aegis_audit_sink_delivered_total", i, "", all[i].delivered);
  family("aegis_audit_sink_dropped_total", "counter",
         "Audit lines a sink never delivered, by reason.");
  for (size_t i = 0; i < n; ++i) {
    series("aegis_audit_sink_dropped_total", i, ",reason=\"buffer_full\"",
           all[i].dropped_buffer_full);
    series("aegis_audit_sink_dropped_total", i, ",reason=\"delivery_failed\"",
           all[i].dropped_delivery_failed);
    series("aegis_audit_sink_dropped_total", i, ",reason=\"shutdown\"", all[i].dropped_shutdown);
  }
  family("aegis_audit_sink_failures_total", "counter",
         "Failed delivery attempts of a sink (each retry counts).");
  for (size_t i = 0; i < n; ++i) series("aegis_audit_sink_failures_total", i, "", all[i].failures);
  family("aegis_audit_sink_truncated_total", "counter",
         "Syslog UDP messages a sink cut to max_datagram_bytes.");
  for (size_t i = 0; i < n; ++i)
    series("aegis_audit_sink_truncated_total", i, "", all[i].truncated);
  family("aegis_audit_sink_queue_depth", "gauge", "Audit lines waiting in a sink's buffer.");
  for (size_t i = 0; i < n; ++i) series("aegis_audit_sink_queue_depth", i, "", all[i].queue_depth);
}

Sinks::Stats Sinks::stats(std::string_view name) const {
  for (const auto& sink : impl_->sinks) {
    if (sink->options.name == name) return sink->stats();
  }
  return Stats{};
}

}  // namespace aegis::audit
