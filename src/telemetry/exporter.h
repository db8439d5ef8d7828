// Exporter: sends finished spans to an OpenTelemetry collector over OTLP/HTTP, off the hot path.
//
// Export() puts a sampled span on a bounded in-memory queue and returns; it never touches the
// network and takes one uncontended-in-practice lock. One background thread takes batches of up
// to max_batch spans — when that many are waiting, or flush_interval after the last send — and
// POSTs each as one ExportTraceServiceRequest (otlp.h), one request at a time. Per the OTLP/HTTP
// specification, 429, 502, 503, 504 and transport failures are retried with exponential backoff
// and jitter, honouring Retry-After, up to max_attempts; any other non-2xx answer drops the
// batch at once. Nothing is dropped silently: every span not delivered is counted under a reason
// in the metrics, and the background thread logs drops (at most one line a second).
//
// Thread-safety: Export and AppendMetrics may be called from any thread; Start and Stop from the
// owner's.
#ifndef AEGIS_TELEMETRY_EXPORTER_H_
#define AEGIS_TELEMETRY_EXPORTER_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "telemetry/otlp.h"
#include "telemetry/span.h"

namespace aegis::telemetry {

class Exporter {
 public:
  using LogFn = std::function<void(std::string_view level, const std::string& message)>;

  // `options` should have passed Validate(); `log` receives "info", "warn" and "error" lines
  // (it may be empty). Logs name the endpoint's scheme, host and port only, never its path.
  Exporter(ExporterOptions options, LogFn log);
  ~Exporter();  // Stop(0)
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // Returns OK if the endpoint is an http(s) URL Fetch accepts, the headers are well formed
  // (and not Content-Type, which the encoding sets), and the sizes are non-zero; else
  // InvalidArgument saying which.
  static common::Status Validate(const ExporterOptions& options);

  // Starts the background thread; spans queued before are sent then. Does nothing after Stop.
  void Start();
  // Stops taking spans, keeps sending (retries included) for up to `drain` or until the queue is
  // empty, then joins the thread. A request in flight finishes first (at most the timeout).
  // Whatever is left is dropped, counted under reason "shutdown". Idempotent.
  void Stop(std::chrono::milliseconds drain);

  // Queues a span for export and returns at once. Spans not sampled (or without a valid
  // context) are ignored. A full queue drops the span (reason "queue_full"); after Stop spans
  // are dropped (reason "shutdown").
  void Export(Span span);

  // Prometheus text exposition:
  //   aegis_spans_exported_total                          spans the collector accepted
  //   aegis_spans_dropped_total{reason="queue_full"}      queue full at Export
  //   aegis_spans_dropped_total{reason="export_failed"}   gave up: attempts exhausted, or an
  //                                                       answer that must not be retried
  //   aegis_spans_dropped_total{reason="rejected"}        refused in a partial success
  //   aegis_spans_dropped_total{reason="shutdown"}        still queued when Stop ended
  //   aegis_span_export_requests_total{result="ok|retry|failed"}  requests by outcome
  //   aegis_span_queue_depth                              spans waiting now
  void AppendMetrics(std::string& out) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace aegis::telemetry

#endif  // AEGIS_TELEMETRY_EXPORTER_H_
