// Trace context: the W3C Trace Context `traceparent` header (https://www.w3.org/TR/trace-context/)
// that joins an Aegis decision to the caller's trace, and the random ids of new traces and spans.
//
// Everything here is thread-safe. The id generator is per thread: a xoshiro256** generator
// seeded once per thread from getrandom(2), so ids cost a few nanoseconds and no lock.
#ifndef AEGIS_TELEMETRY_TRACE_CONTEXT_H_
#define AEGIS_TELEMETRY_TRACE_CONTEXT_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace aegis::telemetry {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

struct TraceContext {
  TraceId trace_id{};
  SpanId span_id{};  // in a parsed header: the caller's span (W3C "parent-id")
  bool sampled = false;
  bool valid = false;
};

// Parses a `traceparent` value: "<version>-<trace-id>-<parent-id>-<trace-flags>", all
// lower-case hex. Returns valid=false (and nothing else set) for anything the spec says to
// ignore, so the caller starts a new trace:
//   - a version that is not two lower-case hex digits, or "ff";
//   - version 00 not exactly 55 characters (no trailing fields);
//   - a higher version shorter than 55 characters, or whose flags are followed by anything but
//     the end or "-" (later versions may append fields, which are ignored);
//   - ids or flags not lower-case hex, missing dashes, an all-zero trace id or parent id.
// Optional whitespace (spaces, tabs) around the value is ignored, as HTTP allows. Only the
// sampled flag (bit 0) is kept.
TraceContext ParseTraceparent(std::string_view header);

// "00-<trace id>-<span id>-<01|00>": the header to send downstream on behalf of `c`.
std::string FormatTraceparent(const TraceContext& c);

// Lower-case hex of an id.
std::string HexId(const TraceId& id);
std::string HexId(const SpanId& id);

// New random ids, never all zero.
TraceId NewTraceId();
SpanId NewSpanId();

}  // namespace aegis::telemetry

#endif  // AEGIS_TELEMETRY_TRACE_CONTEXT_H_
