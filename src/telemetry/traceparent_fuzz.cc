// Fuzz target for what the tracing code reads from callers: any bytes as a traceparent header
// (valid ones must round-trip through FormatTraceparent), and as every string of a span (the
// UTF-8 clean-up must give valid, bounded UTF-8, and the OTLP/JSON body must parse as JSON).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/json.h"
#include "telemetry/otlp.h"
#include "telemetry/span.h"
#include "telemetry/trace_context.h"

using namespace aegis::telemetry;  // NOLINT: a fuzz entry point, not library code

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  TraceContext c = ParseTraceparent(in);
  if (c.valid) {
    if (c.trace_id == TraceId{} || c.span_id == SpanId{}) std::abort();
    TraceContext again = ParseTraceparent(FormatTraceparent(c));
    if (!again.valid || again.trace_id != c.trace_id || again.span_id != c.span_id ||
        again.sampled != c.sampled) {
      std::abort();
    }
  }

  size_t max = size % 61 + 3;
  std::string clean;
  AppendSanitizedUtf8(clean, in, max);
  if (clean.size() > max || !aegis::common::IsValidUtf8(clean)) std::abort();

  Span s = StartSpan(std::string(in), c, 1, 1);
  s.error = true;
  s.status_message = std::string(in);
  s.attributes.strings = {{std::string(in), std::string(in)}};
  ExporterOptions o;
  o.max_attribute_value_bytes = 64;
  o.resource_attributes = {{"host.name", std::string(in)}};
  if (!aegis::common::ParseJson(EncodeJson({s}, o)).ok()) std::abort();
  (void)EncodeProtobuf({s}, o);
  return 0;
}
