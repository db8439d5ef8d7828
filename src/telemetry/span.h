// Span: one finished unit of work to export over OTLP. Aegis records one per decision
// ("aegis.decide"), joined to the caller's trace when the call carried a `traceparent`.
// docs/tracing.md lists the span's name and attributes.
//
// A Span is a plain value: the caller fills it in on its own thread and hands it to
// Exporter::Export, which takes it by value.
#ifndef AEGIS_TELEMETRY_SPAN_H_
#define AEGIS_TELEMETRY_SPAN_H_

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "telemetry/trace_context.h"

namespace aegis::telemetry {

// Attribute values by type, each list in the order it is exported. Keys should be distinct
// across the four lists; the encoder does not check. Strings are exported as valid UTF-8
// (invalid bytes become U+FFFD) and cut to ExporterOptions::max_attribute_value_bytes.
struct SpanAttributes {
  std::vector<std::pair<std::string, std::string>> strings;
  std::vector<std::pair<std::string, int64_t>> ints;
  std::vector<std::pair<std::string, double>> doubles;
  std::vector<std::pair<std::string, bool>> bools;

  size_t size() const { return strings.size() + ints.size() + doubles.size() + bools.size(); }
};

// OTLP Span.SpanKind values.
inline constexpr int kSpanKindInternal = 1;
inline constexpr int kSpanKindServer = 2;
inline constexpr int kSpanKindClient = 3;

struct Span {
  // This span's trace id (the parent's, or new) and its own new span id; `sampled` decides
  // whether it is exported at all.
  TraceContext context;
  std::array<uint8_t, 8> parent_span_id{};
  bool has_parent = false;  // parent_span_id is a remote caller's span (from a traceparent)
  std::string name;         // e.g. "aegis.decide"
  int64_t start_unix_nanos = 0, end_unix_nanos = 0;
  int kind = kSpanKindServer;
  // OTLP status: ERROR with `status_message` when `error`, else UNSET (a deny is a decision,
  // not an error).
  bool error = false;
  std::string status_message;
  SpanAttributes attributes;
};

// Starts a span: when `parent` is valid the span joins its trace (same trace id, parent span id
// = parent.span_id) and inherits its sampled flag (parent-based sampling); otherwise it starts a
// new trace, sampled with probability `sample_ratio` (clamped to [0, 1]; NaN counts as 0). The
// ratio decision is a function of the new trace id (its last 56 bits, as in W3C Trace Context
// level 2 and OpenTelemetry's consistent probability sampling), so any service sampling the
// same trace at the same ratio agrees. The span gets a new random span id; the caller sets the
// end time, status and attributes.
Span StartSpan(std::string name, const TraceContext& parent, int64_t now_unix_nanos,
               double sample_ratio);

// The ratio decision StartSpan makes for a new trace id; exposed for tests.
bool SampledByRatio(const TraceId& trace_id, double sample_ratio);

}  // namespace aegis::telemetry

#endif  // AEGIS_TELEMETRY_SPAN_H_
