#include "telemetry/span.h"

#include <cmath>

namespace aegis::telemetry {

bool SampledByRatio(const TraceId& trace_id, double sample_ratio) {
  if (!(sample_ratio > 0)) return false;  // also NaN
  if (sample_ratio >= 1) return true;
  // The last 7 bytes of the trace id as a 56-bit random number R; sampled iff R falls under
  // ratio * 2^56 (OpenTelemetry's rejection threshold T = (1 - ratio) * 2^56, R >= T, read
  // from the other end so ratio 1 keeps everything and ratio 0 nothing).
  uint64_t r = 0;
  for (size_t i = 9; i < 16; ++i) r = r << 8 | trace_id[i];
  auto threshold = static_cast<uint64_t>(std::ldexp(sample_ratio, 56));  // < 2^56 here
  return r < threshold;
}

Span StartSpan(std::string name, const TraceContext& parent, int64_t now_unix_nanos,
               double sample_ratio) {
  Span span;
  span.name = std::move(name);
  span.start_unix_nanos = now_unix_nanos;
  span.end_unix_nanos = now_unix_nanos;
  span.context.valid = true;
  span.context.span_id = NewSpanId();
  if (parent.valid) {
    span.context.trace_id = parent.trace_id;
    span.context.sampled = parent.sampled;
    span.parent_span_id = parent.span_id;
    span.has_parent = true;
  } else {
    span.context.trace_id = NewTraceId();
    span.context.sampled = SampledByRatio(span.context.trace_id, sample_ratio);
  }
  return span;
}

}  // namespace aegis::telemetry
