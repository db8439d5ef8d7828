// Test tool for tests/telemetry: exports a fixed set of spans to an OTLP/HTTP endpoint through
// the real Exporter, then prints what it sent as JSON, so a test in another language can check
// the decoded request against it.
//
//   otlp_export_tool <endpoint> <protobuf|json> <traceparent>
//
// Spans: an "aegis.decide" decision joined to <traceparent> with one attribute of each type,
// awkward strings (non-ASCII, invalid UTF-8, too long) included; a root span with an error
// status; and a span whose parent is not sampled (it must not be exported). Output:
//   {"spans":[{"name","trace_id","span_id","parent_span_id","exported"}...],"metrics":"<text>"}
// Exit status 0 when the exporter reports every sampled span exported, 1 otherwise.
#include <cstdint>
#include <iostream>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "telemetry/exporter.h"
#include "telemetry/span.h"
#include "telemetry/trace_context.h"

namespace {

using namespace aegis::telemetry;  // NOLINT: a test tool

constexpr int64_t kStart = 1700000000123456789;

std::vector<Span> Spans(const TraceContext& parent) {
  std::vector<Span> spans;

  Span decide = StartSpan("aegis.decide", parent, kStart, 1.0);
  decide.end_unix_nanos = kStart + 1500000;
  decide.attributes.strings = {
      {"aegis.agent", "finance-agent"},
      {"aegis.tenant", "acme"},
      {"aegis.tool", "stripe"},
      {"aegis.action", "create_payment"},
      {"aegis.decision", "approval_needed"},
      {"aegis.rule", "payment-ceiling"},
      {"aegis.policy_version", "sha256:9f86d081884c7d65"},
      {"aegis.decision_id", "dec_0123456789abcdef"},
      {"aegis.front_door", "decide_api"},
      {"test.unicode", "Z\xC3\xBCrich \xE2\x9C\x93 \xF0\x9D\x84\x9E"},
      {"test.invalid_utf8", "caf\xC3 \xFF!"},
      {"test.long", std::string(5000, 'x')},
  };
  decide.attributes.ints = {{"test.int64_max", std::numeric_limits<int64_t>::max()},
                            {"test.negative", -42}};
  decide.attributes.doubles = {{"aegis.cost_usd", 0.002}};
  decide.attributes.bools = {{"aegis.enforced", true}, {"aegis.shadow", false}};
  spans.push_back(std::move(decide));

  Span failed = StartSpan("aegis.decide", TraceContext{}, kStart + 10, 1.0);
  failed.end_unix_nanos = kStart + 20;
  failed.error = true;
  failed.status_message = "limits store unavailable";
  failed.attributes.strings = {{"aegis.decision", "deny"}};
  spans.push_back(std::move(failed));

  TraceContext unsampled = parent;
  unsampled.sampled = false;
  Span skipped = StartSpan("aegis.decide.unsampled", unsampled, kStart, 1.0);
  skipped.end_unix_nanos = kStart + 1;
  spans.push_back(std::move(skipped));
  return spans;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: otlp_export_tool <endpoint> <protobuf|json> <traceparent>\n";
    return 2;
  }
  ExporterOptions o;
  o.endpoint = argv[1];
  std::string_view encoding = argv[2];
  if (encoding == "json") {
    o.encoding = ExporterOptions::Encoding::kJson;
  } else if (encoding != "protobuf") {
    std::cerr << "encoding must be protobuf or json\n";
    return 2;
  }
  o.service_name = "aegis";
  o.resource_attributes = {{"service.version", "0.1.0-test"}, {"host.name", "otlp-test-host"}};
  o.headers = {{"X-Test-Header", "yes"}};
  o.flush_interval = std::chrono::milliseconds(50);
  if (auto s = Exporter::Validate(o); !s.ok()) {
    std::cerr << s << "\n";
    return 2;
  }
  TraceContext parent = ParseTraceparent(argv[3]);
  if (!parent.valid) {
    std::cerr << "invalid traceparent\n";
    return 2;
  }

  Exporter exporter(o, [](std::string_view level, const std::string& message) {
    std::cerr << level << ": " << message << "\n";
  });
  exporter.Start();
  std::vector<Span> spans = Spans(parent);
  size_t sampled = 0;
  std::string out = "{\"spans\":[";
  for (size_t i = 0; i < spans.size(); ++i) {
    const Span& s = spans[i];
    if (i > 0) out += ",";
    out += "{\"name\":";
    aegis::common::AppendJsonString(out, s.name);
    out += ",\"trace_id\":\"" + HexId(s.context.trace_id) + "\"";
    out += ",\"span_id\":\"" + HexId(s.context.span_id) + "\"";
    out += ",\"parent_span_id\":\"" + (s.has_parent ? HexId(s.parent_span_id) : "") + "\"";
    out += s.context.sampled ? ",\"exported\":true}" : ",\"exported\":false}";
    sampled += s.context.sampled;
    exporter.Export(s);
  }
  exporter.Stop(std::chrono::milliseconds(10000));
  std::string metrics;
  exporter.AppendMetrics(metrics);
  out += "],\"metrics\":";
  aegis::common::AppendJsonString(out, metrics);
  out += "}";
  std::cout << out << "\n";
  bool all = metrics.find("aegis_spans_exported_total " + std::to_string(sampled) + "\n") !=
             std::string::npos;
  return all ? 0 : 1;
}
