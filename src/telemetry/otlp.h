// OTLP/HTTP trace export: the exporter's options and the request bodies it POSTs.
//
// The body is an ExportTraceServiceRequest (opentelemetry/proto/collector/trace/v1) holding one
// ResourceSpans (the resource: service.name and the configured attributes), one ScopeSpans
// (scope "aegis") and the spans. Two encodings, as the OTLP specification defines them:
//   - protobuf (Content-Type application/x-protobuf), encoded by hand here: the messages are
//     few and flat, and writing the wire format directly keeps libprotobuf off the gateway's
//     path. Tests decode it with generated classes (src/telemetry/proto) and with
//     OpenTelemetry's own generated JavaScript code (tests/telemetry);
//   - OTLP/JSON (application/json): the proto3 JSON mapping with OTLP's exceptions: trace and
//     span ids as lower-case hex (not base64), enums as integers, lowerCamelCase keys, 64-bit
//     integers as decimal strings.
// Strings (names, keys, values, the status message) are made valid UTF-8 (each invalid byte
// becomes U+FFFD) and cut at a character boundary to max_attribute_value_bytes.
#ifndef AEGIS_TELEMETRY_OTLP_H_
#define AEGIS_TELEMETRY_OTLP_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "telemetry/span.h"

namespace aegis::telemetry {

struct ExporterOptions {
  // The OTLP/HTTP traces URL, path included (a collector's default is port 4318, /v1/traces).
  std::string endpoint = "http://127.0.0.1:4318/v1/traces";
  enum class Encoding { kProtobuf, kJson } encoding = Encoding::kProtobuf;
  std::string service_name = "aegis";  // resource attribute service.name
  // More resource attributes: service.version, host.name, deployment.environment.name, ...
  // A "service.name" here is ignored (service_name wins).
  std::vector<std::pair<std::string, std::string>> resource_attributes;
  // Sent with every request, e.g. an Authorization header for a collector.
  std::vector<std::pair<std::string, std::string>> headers;
  size_t queue_capacity = 8192;  // spans waiting; beyond it Export drops (counted)
  size_t max_batch = 512;        // spans per request
  std::chrono::milliseconds flush_interval{1000};  // longest a span waits for a batch to fill
  std::chrono::milliseconds timeout{5000};         // per request, the whole HTTP exchange
  int max_attempts = 3;                            // per batch, the first included
  // Retry delays: exponential from initial_backoff with jitter; a Retry-After from the collector
  // replaces the computed delay. Both are capped at max_backoff.
  std::chrono::milliseconds initial_backoff{250}, max_backoff{30000};
  std::string ca_file;                      // PEM CAs for an https endpoint; empty: the system's
  size_t max_attribute_value_bytes = 4096;  // per string (UTF-8 bytes), keys and names too
  size_t max_attributes_per_span = 128;     // beyond: counted in dropped_attributes_count
};

// Content-Type of the encoding: "application/x-protobuf" or "application/json".
std::string_view ContentType(ExporterOptions::Encoding encoding);

// The request bodies, exactly what the exporter POSTs.
std::string EncodeProtobuf(const std::vector<Span>& spans, const ExporterOptions& o);
std::string EncodeJson(const std::vector<Span>& spans, const ExporterOptions& o);
std::string Encode(const std::vector<Span>& spans, const ExporterOptions& o);  // per o.encoding

// What a collector's ExportTraceServiceResponse says about spans it refused although it
// answered 2xx (OTLP "partial success"). An empty or unreadable body means none.
struct PartialSuccess {
  int64_t rejected_spans = 0;
  std::string error_message;
};
PartialSuccess ParseExportResponse(std::string_view body, ExporterOptions::Encoding encoding);

// Appends `s` as valid UTF-8 of at most `max_bytes`: each byte that does not start a
// well-formed sequence (overlong, surrogate, above U+10FFFF, truncated) becomes U+FFFD; the
// output stops before the first character that would not fit.
void AppendSanitizedUtf8(std::string& out, std::string_view s, size_t max_bytes);

}  // namespace aegis::telemetry

#endif  // AEGIS_TELEMETRY_OTLP_H_
