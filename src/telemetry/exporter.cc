#include "telemetry/exporter.h"

#include <strings.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "common/files.h"
#include "common/strings.h"
#include "net/http_client.h"

namespace aegis::telemetry {

using Clock = std::chrono::steady_clock;
using common::StrCat;
using std::chrono::milliseconds;

namespace {

// Retry-After: delta-seconds, or an HTTP-date (IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT").
// Returns nullopt for anything else.
std::optional<milliseconds> ParseRetryAfter(const std::string* value) {
  if (!value || value->empty()) return std::nullopt;
  const std::string& v = *value;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (v.size() > 9) return milliseconds(999999999LL * 1000);  // capped by the caller anyway
    return milliseconds(std::stoll(v) * 1000);
  }
  struct tm tm {};
  const char* end = strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return std::nullopt;
  time_t at = timegm(&tm);
  if (at == static_cast<time_t>(-1)) return std::nullopt;
  auto now = std::chrono::system_clock::now();
  auto delay = std::chrono::system_clock::from_time_t(at) - now;
  return std::max(milliseconds(0), std::chrono::duration_cast<milliseconds>(delay));
}

// The first bytes of a collector's error body, as one line of valid UTF-8, for a log message.
std::string Snippet(std::string_view body) {
  std::string out;
  AppendSanitizedUtf8(out, body.substr(0, 200), 200);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return out;
}

std::string FormatDelay(milliseconds d) {
  if (d.count() % 1000 == 0) return StrCat(d.count() / 1000, "s");
  return StrCat(d.count(), "ms");
}

std::string Spans(uint64_t n) { return StrCat(n, n == 1 ? " span" : " spans"); }

}  // namespace

struct Exporter::Impl {
  ExporterOptions options;
  LogFn log;
  std::string origin;  // scheme://host:port of the endpoint, safe to log
  std::vector<std::pair<std::string, std::string>> request_headers;

  mutable std::mutex mu;
  std::condition_variable wake;
  std::deque<Span> queue;
  bool stopping = false;  // Stop called: no new spans, drain until drain_deadline
  Clock::time_point drain_deadline;
  std::thread worker;

  std::atomic<uint64_t> exported{0};
  std::atomic<uint64_t> dropped_queue_full{0}, dropped_export_failed{0}, dropped_rejected{0},
      dropped_shutdown{0};
  std::atomic<uint64_t> requests_ok{0}, requests_retry{0}, requests_failed{0};

  // The worker's own.
  std::mt19937_64 rng{std::random_device{}()};
  uint64_t queue_full_logged = 0;
  Clock::time_point last_drop_log;

  void Log(std::string_view level, const std::string& message) const {
    if (log) log(level, message);
  }

  milliseconds Backoff(int attempts) {
    return common::JitteredBackoff(attempts, options.initial_backoff, options.max_backoff, rng);
  }

  enum class Result { kSent, kRetry, kGiveUp };
  struct Outcome {
    Result result = Result::kSent;
    std::string reason;
    std::optional<milliseconds> retry_after;
    std::string body;
  };

  Outcome Attempt(const std::string& body, milliseconds timeout) const {
    net::FetchRequest request;
    request.method = "POST";
    request.url = options.endpoint;
    request.headers = request_headers;
    request.body = body;
    request.timeout = timeout;
    request.ca_file = options.ca_file;
    auto response = net::Fetch(request);
    Outcome out;
    if (!response.ok()) {
      // Unavailable (connect, TLS, timeout) is worth retrying; a bad URL or header, or an
      // oversized answer, will not change.
      out.result = response.status().code() == common::StatusCode::kUnavailable ? Result::kRetry
                                                                                : Result::kGiveUp;
      out.reason = response.status().message();
      return out;
    }
    int status = response->status;
    if (status >= 200 && status < 300) {
      out.body = std::move(response->body);
      return out;
    }
    out.reason = StrCat("HTTP ", status);
    if (!response->body.empty()) out.reason += StrCat(": ", Snippet(response->body));
    // OTLP/HTTP: only these are retryable; anything else means the data will never be taken.
    if (status == 429 || status == 502 || status == 503 || status == 504) {
      out.result = Result::kRetry;
      out.retry_after = ParseRetryAfter(response->Header("Retry-After"));
    } else {
      out.result = Result::kGiveUp;
    }
    return out;
  }

  // Sends one batch, with retries. Called by the worker without the lock.
  void Send(std::vector<Span>& batch) {
    const uint64_t n = batch.size();
    std::string body = Encode(batch, options);
    batch.clear();
    for (int attempt = 1;; ++attempt) {
      milliseconds timeout = options.timeout;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (stopping) {
          auto left = std::chrono::duration_cast<milliseconds>(drain_deadline - Clock::now());
          timeout = std::min(timeout, std::max(milliseconds(1), left));
        }
      }
      Outcome outcome = Attempt(body, timeout);
      if (outcome.result == Result::kSent) {
        requests_ok.fetch_add(1, std::memory_order_relaxed);
        PartialSuccess partial = ParseExportResponse(outcome.body, options.encoding);
        uint64_t rejected =
            static_cast<uint64_t>(std::clamp<int64_t>(partial.rejected_spans, 0, n));
        exported.fetch_add(n - rejected, std::memory_order_relaxed);
        dropped_rejected.fetch_add(rejected, std::memory_order_relaxed);
        if (rejected > 0 || !partial.error_message.empty()) {
          Log("warn", StrCat("traces: ", origin, " accepted ", Spans(n - rejected), ", rejected ",
                             rejected, ": ", partial.error_message));
        } else if (attempt > 1) {
          Log("info", StrCat("traces: ", origin, ": ", Spans(n), " sent on attempt ", attempt));
        }
        return;
      }
      if (outcome.result == Result::kRetry && attempt < options.max_attempts) {
        milliseconds delay = outcome.retry_after
                                 ? std::min(*outcome.retry_after, options.max_backoff)
                                 : Backoff(attempt);
        Clock::time_point retry_at = Clock::now() + delay;
        std::unique_lock<std::mutex> lock(mu);
        // Stop may shorten the wait: a retry that would fall after the drain deadline is not made.
        bool cut =
            wake.wait_until(lock, retry_at, [&] { return stopping && drain_deadline < retry_at; });
        lock.unlock();
        if (!cut) {
          requests_retry.fetch_add(1, std::memory_order_relaxed);
          Log("warn",
              StrCat("traces: ", origin, ": attempt ", attempt, " of ", options.max_attempts,
                     " failed: ", outcome.reason, "; retrying in ", FormatDelay(delay)));
          continue;
        }
        outcome.reason += "; no time left to retry before shutdown";
      }
      requests_failed.fetch_add(1, std::memory_order_relaxed);
      dropped_export_failed.fetch_add(n, std::memory_order_relaxed);
      Log("error", StrCat("traces: ", origin, ": dropped ", Spans(n), " after ", attempt,
                          attempt == 1 ? " attempt: " : " attempts: ", outcome.reason));
      return;
    }
  }

  // Logs spans dropped at Export for a full queue, at most once a second. Worker thread only.
  void LogQueueFullDrops() {
    uint64_t total = dropped_queue_full.load(std::memory_order_relaxed);
    if (total == queue_full_logged) return;
    Clock::time_point now = Clock::now();
    if (queue_full_logged != 0 && now - last_drop_log < std::chrono::seconds(1)) return;
    Log("warn", StrCat("traces: queue full (", options.queue_capacity, "): dropped ",
                       Spans(total - queue_full_logged), " (", total, " in all)"));
    queue_full_logged = total;
    last_drop_log = now;
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mu);
    Clock::time_point next_flush = Clock::now() + options.flush_interval;
    std::vector<Span> batch;
    while (true) {
      // Returns for a full batch, a stop, or the flush time: in each case send what is there.
      wake.wait_until(lock, next_flush,
                      [&] { return stopping || queue.size() >= options.max_batch; });
      Clock::time_point now = Clock::now();
      if (now >= next_flush) next_flush = now + options.flush_interval;
      if (stopping && (queue.empty() || now >= drain_deadline)) break;
      if (!queue.empty()) {
        size_t take = std::min(queue.size(), options.max_batch);
        batch.reserve(take);
        for (size_t i = 0; i < take; ++i) {
          batch.push_back(std::move(queue.front()));
          queue.pop_front();
        }
        lock.unlock();
        Send(batch);
        LogQueueFullDrops();
        lock.lock();
      } else {
        lock.unlock();
        LogQueueFullDrops();
        lock.lock();
      }
    }
    DropRemaining(lock);
  }

  // Drops whatever is still queued (at Stop), counted and logged. Takes and releases `lock`.
  void DropRemaining(std::unique_lock<std::mutex>& lock) {
    size_t left = queue.size();
    queue.clear();
    dropped_shutdown.fetch_add(left, std::memory_order_relaxed);
    lock.unlock();
    LogQueueFullDrops();
    if (left > 0) {
      Log("warn", StrCat("traces: stopped with ", Spans(left), " unsent; dropped"));
    }
  }
};

Exporter::Exporter(ExporterOptions options, LogFn log) : impl_(std::make_unique<Impl>()) {
  ExporterOptions& o = impl_->options;
  o = std::move(options);
  o.queue_capacity = std::max<size_t>(o.queue_capacity, 1);
  o.max_batch = std::max<size_t>(o.max_batch, 1);
  o.max_attempts = std::max(o.max_attempts, 1);
  o.flush_interval = std::max(o.flush_interval, milliseconds(1));
  o.timeout = std::max(o.timeout, milliseconds(1));
  o.max_backoff = std::max(o.max_backoff, milliseconds(1));
  impl_->log = std::move(log);
  auto url = net::ParseUrl(o.endpoint);
  impl_->origin = url.ok() ? url->Origin() : std::string("(invalid endpoint)");
  impl_->request_headers.emplace_back("Content-Type", std::string(ContentType(o.encoding)));
  for (const auto& h : o.headers) impl_->request_headers.push_back(h);
}

Exporter::~Exporter() { Stop(milliseconds(0)); }

common::Status Exporter::Validate(const ExporterOptions& o) {
  auto url = net::ParseUrl(o.endpoint);
  if (!url.ok()) {
    return common::InvalidArgumentError(StrCat("traces endpoint: ", url.status().message()));
  }
  for (const auto& [name, value] : o.headers) {
    if (strcasecmp(name.c_str(), "Content-Type") == 0) {
      return common::InvalidArgumentError(
          "traces headers: Content-Type is set by the encoding and cannot be configured");
    }
    if (auto s = net::CheckHeader(name, value); !s.ok()) {
      return common::InvalidArgumentError(StrCat("traces headers: ", s.message()));
    }
  }
  if (o.queue_capacity == 0) return common::InvalidArgumentError("traces queue_capacity is 0");
  if (o.max_batch == 0) return common::InvalidArgumentError("traces max_batch is 0");
  if (o.max_attempts < 1) return common::InvalidArgumentError("traces max_attempts is below 1");
  if (o.flush_interval <= milliseconds(0)) {
    return common::InvalidArgumentError("traces flush_interval must be positive");
  }
  if (o.timeout <= milliseconds(0)) {
    return common::InvalidArgumentError("traces timeout must be positive");
  }
  if (o.max_attribute_value_bytes < 16) {
    return common::InvalidArgumentError("traces max_attribute_value_bytes is below 16");
  }
  return common::OkStatus();
}

void Exporter::Start() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->stopping || impl_->worker.joinable()) return;
  impl_->worker = std::thread([impl = impl_.get()] { impl->Run(); });
}

void Exporter::Stop(milliseconds drain) {
  std::unique_lock<std::mutex> lock(impl_->mu);
  if (!impl_->stopping) {
    impl_->stopping = true;
    impl_->drain_deadline = Clock::now() + std::max(drain, milliseconds(0));
  }
  if (!impl_->worker.joinable()) {
    impl_->DropRemaining(lock);  // never started (or already stopped): nothing will send
    return;
  }
  lock.unlock();
  impl_->wake.notify_all();
  // Only the owner calls Stop, so no one else joins concurrently.
  impl_->worker.join();
}

void Exporter::Export(Span span) {
  if (!span.context.valid || !span.context.sampled) return;
  std::unique_lock<std::mutex> lock(impl_->mu);
  if (impl_->stopping) {
    lock.unlock();
    impl_->dropped_shutdown.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (impl_->queue.size() >= impl_->options.queue_capacity) {
    lock.unlock();
    impl_->dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  impl_->queue.push_back(std::move(span));
  bool batch_ready = impl_->queue.size() == impl_->options.max_batch;
  lock.unlock();
  // Only a full batch wakes the worker early; otherwise it sends on its flush_interval timer.
  if (batch_ready) impl_->wake.notify_one();
}

void Exporter::AppendMetrics(std::string& out) const {
  size_t depth;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    depth = impl_->queue.size();
  }
  auto load = [](const std::atomic<uint64_t>& v) { return v.load(std::memory_order_relaxed); };
  out += StrCat(
      "# HELP aegis_spans_exported_total Spans the OTLP collector accepted.\n"
      "# TYPE aegis_spans_exported_total counter\n"
      "aegis_spans_exported_total ",
      load(impl_->exported),
      "\n# HELP aegis_spans_dropped_total Sampled spans never delivered, by reason.\n"
      "# TYPE aegis_spans_dropped_total counter\n"
      "aegis_spans_dropped_total{reason=\"queue_full\"} ",
      load(impl_->dropped_queue_full), "\naegis_spans_dropped_total{reason=\"export_failed\"} ",
      load(impl_->dropped_export_failed), "\naegis_spans_dropped_total{reason=\"rejected\"} ",
      load(impl_->dropped_rejected), "\naegis_spans_dropped_total{reason=\"shutdown\"} ",
      load(impl_->dropped_shutdown),
      "\n# HELP aegis_span_export_requests_total OTLP export requests, by outcome.\n"
      "# TYPE aegis_span_export_requests_total counter\n"
      "aegis_span_export_requests_total{result=\"ok\"} ",
      load(impl_->requests_ok), "\naegis_span_export_requests_total{result=\"retry\"} ",
      load(impl_->requests_retry), "\naegis_span_export_requests_total{result=\"failed\"} ",
      load(impl_->requests_failed),
      "\n# HELP aegis_span_queue_depth Spans waiting to be exported.\n"
      "# TYPE aegis_span_queue_depth gauge\n"
      "aegis_span_queue_depth ",
      depth, "\n");
}

}  // namespace aegis::telemetry
