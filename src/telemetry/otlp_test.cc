// The OTLP request bodies: the hand-written protobuf encoding decoded with libprotobuf's
// generated classes (from src/telemetry/proto), and the OTLP/JSON encoding read back as JSON.
#include "telemetry/otlp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "common/json.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "telemetry/span.h"
#include "telemetry/trace_context.h"

namespace aegis::telemetry {
namespace {

namespace otlp = ::opentelemetry::proto;
using otlp::collector::trace::v1::ExportTraceServiceRequest;
using otlp::collector::trace::v1::ExportTraceServiceResponse;

constexpr std::string_view kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr int64_t kStart = 1700000000123456789;

ExporterOptions Options() {
  ExporterOptions o;
  o.service_name = "aegis-test";
  o.resource_attributes = {{"service.version", "1.2.3"},
                           {"host.name", "gw-1"},
                           {"service.name", "ignored"},
                           {"", "empty key ignored"}};
  return o;
}

Span DecisionSpan() {
  Span s = StartSpan("aegis.decide", ParseTraceparent(kParent), kStart, 0);
  s.end_unix_nanos = kStart + 1500;
  s.attributes.strings = {{"aegis.agent", "finance-agent"},
                          {"aegis.tenant", "acme"},
                          {"aegis.tool", "stripe"},
                          {"aegis.action", "create_payment"},
                          {"aegis.decision", "approval_needed"},
                          {"aegis.rule", "payment-ceiling"},
                          {"aegis.policy_version", "sha256:0123abcd"},
                          {"aegis.front_door", "decide_api"},
                          {"aegis.empty", ""}};
  s.attributes.ints = {{"aegis.int.max", std::numeric_limits<int64_t>::max()},
                       {"aegis.int.min", std::numeric_limits<int64_t>::min()},
                       {"aegis.int.minus_one", -1},
                       {"aegis.int.zero", 0}};
  s.attributes.doubles = {{"aegis.cost_usd", 0.002}, {"aegis.zero", 0.0}};
  s.attributes.bools = {{"aegis.enforced", true}, {"aegis.shadow", false}};
  return s;
}

std::string Bytes(const uint8_t* data, size_t n) {
  return std::string(reinterpret_cast<const char*>(data), n);
}

const otlp::common::v1::AnyValue* Find(
    const google::protobuf::RepeatedPtrField<otlp::common::v1::KeyValue>& kvs,
    std::string_view key) {
  for (const auto& kv : kvs) {
    if (kv.key() == key) return &kv.value();
  }
  return nullptr;
}

ExportTraceServiceRequest Decode(const std::string& body) {
  ExportTraceServiceRequest request;
  EXPECT_TRUE(request.ParseFromString(body));
  return request;
}

TEST(Protobuf, DecodesWithGeneratedClasses) {
  Span span = DecisionSpan();
  ExportTraceServiceRequest r = Decode(EncodeProtobuf({span}, Options()));
  ASSERT_EQ(r.resource_spans_size(), 1);
  const auto& rs = r.resource_spans(0);

  const auto& res = rs.resource().attributes();
  ASSERT_NE(Find(res, "service.name"), nullptr);
  EXPECT_EQ(Find(res, "service.name")->string_value(), "aegis-test");
  EXPECT_EQ(Find(res, "service.version")->string_value(), "1.2.3");
  EXPECT_EQ(Find(res, "host.name")->string_value(), "gw-1");
  EXPECT_EQ(Find(res, "telemetry.sdk.name")->string_value(), "aegis");
  EXPECT_EQ(Find(res, "telemetry.sdk.language")->string_value(), "cpp");
  int service_names = 0;
  for (const auto& kv : res) {
    service_names += kv.key() == "service.name";
    EXPECT_FALSE(kv.key().empty());
  }
  EXPECT_EQ(service_names, 1);

  ASSERT_EQ(rs.scope_spans_size(), 1);
  EXPECT_EQ(rs.scope_spans(0).scope().name(), "aegis");
  EXPECT_FALSE(rs.scope_spans(0).scope().version().empty());
  ASSERT_EQ(rs.scope_spans(0).spans_size(), 1);
  const auto& s = rs.scope_spans(0).spans(0);

  EXPECT_EQ(s.trace_id(), Bytes(span.context.trace_id.data(), 16));
  EXPECT_EQ(HexId(span.context.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(s.span_id(), Bytes(span.context.span_id.data(), 8));
  EXPECT_EQ(s.parent_span_id(), Bytes(ParseTraceparent(kParent).span_id.data(), 8));
  EXPECT_EQ(s.name(), "aegis.decide");
  EXPECT_EQ(s.kind(), otlp::trace::v1::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(s.start_time_unix_nano(), static_cast<uint64_t>(kStart));
  EXPECT_EQ(s.end_time_unix_nano(), static_cast<uint64_t>(kStart + 1500));
  // Sampled, and the parent is known to be remote.
  EXPECT_EQ(s.flags(), 0x01u | 0x100u | 0x200u);
  EXPECT_FALSE(s.has_status());
  EXPECT_EQ(s.dropped_attributes_count(), 0u);

  ASSERT_EQ(s.attributes_size(), static_cast<int>(span.attributes.size()));
  for (const auto& [k, v] : span.attributes.strings) {
    const auto* a = Find(s.attributes(), k);
    ASSERT_NE(a, nullptr) << k;
    EXPECT_TRUE(a->has_string_value()) << k;
    EXPECT_EQ(a->string_value(), v);
  }
  for (const auto& [k, v] : span.attributes.ints) {
    const auto* a = Find(s.attributes(), k);
    ASSERT_NE(a, nullptr) << k;
    EXPECT_TRUE(a->has_int_value()) << k;
    EXPECT_EQ(a->int_value(), v);
  }
  for (const auto& [k, v] : span.attributes.doubles) {
    const auto* a = Find(s.attributes(), k);
    ASSERT_NE(a, nullptr) << k;
    EXPECT_TRUE(a->has_double_value()) << k;
    EXPECT_EQ(a->double_value(), v);
  }
  for (const auto& [k, v] : span.attributes.bools) {
    const auto* a = Find(s.attributes(), k);
    ASSERT_NE(a, nullptr) << k;
    EXPECT_TRUE(a->has_bool_value()) << k;
    EXPECT_EQ(a->bool_value(), v);
  }
}

TEST(Protobuf, EncodingIsCanonical) {
  // libprotobuf re-serializes what it decoded to exactly our bytes: same field order, minimal
  // varints, defaults left out where proto3 leaves them out, oneof members always written.
  Span root = StartSpan("aegis.decide", {}, kStart, 1);
  root.error = true;
  root.status_message = "limits store unavailable";
  std::vector<Span> spans = {DecisionSpan(), root};
  std::string body = EncodeProtobuf(spans, Options());
  EXPECT_EQ(Decode(body).SerializeAsString(), body);

  // A long batch: lengths of several bytes at every level.
  spans.clear();
  for (int i = 0; i < 600; ++i) spans.push_back(DecisionSpan());
  spans[3].attributes.strings.emplace_back("long", std::string(3000, 'y'));
  body = EncodeProtobuf(spans, Options());
  EXPECT_GT(body.size(), 1u << 17);
  ExportTraceServiceRequest r = Decode(body);
  EXPECT_EQ(r.resource_spans(0).scope_spans(0).spans_size(), 600);
  EXPECT_EQ(r.SerializeAsString(), body);
}

TEST(Protobuf, RootSpanWithErrorStatus) {
  Span root = StartSpan("aegis.decide", {}, kStart, 1);
  root.end_unix_nanos = kStart + 10;
  root.error = true;
  root.status_message = "limits store unavailable";
  root.kind = kSpanKindInternal;
  ExportTraceServiceRequest r = Decode(EncodeProtobuf({root}, Options()));
  const auto& s = r.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_TRUE(s.parent_span_id().empty());
  EXPECT_EQ(s.kind(), otlp::trace::v1::Span::SPAN_KIND_INTERNAL);
  EXPECT_EQ(s.flags(), 0x01u | 0x100u);  // sampled; parent not remote (there is none)
  ASSERT_TRUE(s.has_status());
  EXPECT_EQ(s.status().code(), otlp::trace::v1::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(s.status().message(), "limits store unavailable");
}

TEST(Protobuf, StringsAreValidUtf8AndBounded) {
  Span span = DecisionSpan();
  span.name =
      "aegis.\xFF"
      "decide";
  span.attributes.strings = {
      {"bad", "caf\xC3 \xED\xA0\x80!"}, {"long", std::string(10000, 'z')}, {"k\xC0\xAF", "v"}};
  span.error = true;
  span.status_message = "oops \xF8";
  ExporterOptions o = Options();
  o.max_attribute_value_bytes = 1000;
  // libprotobuf refuses a proto3 string field that is not UTF-8, so parsing is the check.
  ExportTraceServiceRequest r = Decode(EncodeProtobuf({span}, o));
  const auto& s = r.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(s.name(), "aegis.\uFFFDdecide");
  EXPECT_EQ(Find(s.attributes(), "bad")->string_value(), "caf\uFFFD \uFFFD\uFFFD\uFFFD!");
  EXPECT_EQ(Find(s.attributes(), "long")->string_value(), std::string(1000, 'z'));
  EXPECT_NE(Find(s.attributes(), "k\uFFFD\uFFFD"), nullptr);
  EXPECT_EQ(s.status().message(), "oops \uFFFD");
}

TEST(Protobuf, AttributeLimitAndEmptyKeysCountAsDropped) {
  Span span = DecisionSpan();
  span.attributes.strings.emplace_back("", "no key");
  ExporterOptions o = Options();
  o.max_attributes_per_span = 5;
  ExportTraceServiceRequest r = Decode(EncodeProtobuf({span}, o));
  const auto& s = r.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(s.attributes_size(), 5);
  EXPECT_EQ(s.dropped_attributes_count(), span.attributes.size() - 5);
  EXPECT_EQ(s.attributes(0).key(), "aegis.agent");
}

TEST(Protobuf, EmptyBatch) {
  ExportTraceServiceRequest r = Decode(EncodeProtobuf({}, Options()));
  ASSERT_EQ(r.resource_spans_size(), 1);
  EXPECT_EQ(r.resource_spans(0).scope_spans(0).spans_size(), 0);
}

TEST(Json, FollowsTheOtlpJsonRules) {
  Span span = DecisionSpan();
  span.attributes.doubles.emplace_back("aegis.nan", std::nan(""));
  span.attributes.strings.emplace_back("quote", "a\"b\\c\n\x01\xFF");
  Span root = StartSpan("aegis.decide", {}, kStart, 1);
  root.end_unix_nanos = kStart + 7;
  root.error = true;
  root.status_message = "boom";
  std::string body = EncodeJson({span, root}, Options());
  auto parsed = common::ParseJson(body);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << body;
  const common::Json& j = *parsed;

  const auto& rs = j.Find("resourceSpans")->as_array();
  ASSERT_EQ(rs.size(), 1u);
  const auto& res = rs[0].Find("resource")->Find("attributes")->as_array();
  EXPECT_EQ(res[0].Find("key")->as_string(), "service.name");
  EXPECT_EQ(res[0].Find("value")->Find("stringValue")->as_string(), "aegis-test");
  const auto& ss = rs[0].Find("scopeSpans")->as_array();
  EXPECT_EQ(ss[0].Find("scope")->Find("name")->as_string(), "aegis");
  const auto& spans = ss[0].Find("spans")->as_array();
  ASSERT_EQ(spans.size(), 2u);

  const common::Json& s = spans[0];
  // Ids as lower-case hex, not base64.
  EXPECT_EQ(s.Find("traceId")->as_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(s.Find("spanId")->as_string(), HexId(span.context.span_id));
  EXPECT_EQ(s.Find("parentSpanId")->as_string(), "00f067aa0ba902b7");
  EXPECT_EQ(s.Find("name")->as_string(), "aegis.decide");
  // Enums as integers; 64-bit integers as decimal strings.
  EXPECT_EQ(s.Find("kind")->as_int(), 2);
  EXPECT_EQ(s.Find("flags")->as_int(), 0x301);
  EXPECT_EQ(s.Find("startTimeUnixNano")->as_string(), "1700000000123456789");
  EXPECT_EQ(s.Find("endTimeUnixNano")->as_string(), "1700000000123458289");
  EXPECT_EQ(s.Find("status"), nullptr);

  auto attr = [&](std::string_view key) -> const common::Json* {
    for (const auto& a : s.Find("attributes")->as_array()) {
      if (a.Find("key")->as_string() == key) return a.Find("value");
    }
    return nullptr;
  };
  EXPECT_EQ(attr("aegis.agent")->Find("stringValue")->as_string(), "finance-agent");
  EXPECT_EQ(attr("aegis.int.max")->Find("intValue")->as_string(), "9223372036854775807");
  EXPECT_EQ(attr("aegis.int.min")->Find("intValue")->as_string(), "-9223372036854775808");
  EXPECT_EQ(attr("aegis.cost_usd")->Find("doubleValue")->as_double(), 0.002);
  EXPECT_EQ(attr("aegis.nan")->Find("doubleValue")->as_string(), "NaN");
  EXPECT_TRUE(attr("aegis.enforced")->Find("boolValue")->as_bool());
  EXPECT_FALSE(attr("aegis.shadow")->Find("boolValue")->as_bool());
  EXPECT_EQ(attr("quote")->Find("stringValue")->as_string(), "a\"b\\c\n\x01\uFFFD");

  const common::Json& r = spans[1];
  EXPECT_EQ(r.Find("parentSpanId"), nullptr);
  EXPECT_EQ(r.Find("flags")->as_int(), 0x101);
  EXPECT_EQ(r.Find("status")->Find("code")->as_int(), 2);
  EXPECT_EQ(r.Find("status")->Find("message")->as_string(), "boom");
}

TEST(Response, PartialSuccessInBothEncodings) {
  ExportTraceServiceResponse response;
  response.mutable_partial_success()->set_rejected_spans(3);
  response.mutable_partial_success()->set_error_message("3 spans too old");
  PartialSuccess p =
      ParseExportResponse(response.SerializeAsString(), ExporterOptions::Encoding::kProtobuf);
  EXPECT_EQ(p.rejected_spans, 3);
  EXPECT_EQ(p.error_message, "3 spans too old");

  p = ParseExportResponse(R"({"partialSuccess":{"rejectedSpans":"2","errorMessage":"x"}})",
                          ExporterOptions::Encoding::kJson);
  EXPECT_EQ(p.rejected_spans, 2);
  EXPECT_EQ(p.error_message, "x");
  p = ParseExportResponse(R"({"partialSuccess":{"rejectedSpans":4}})",
                          ExporterOptions::Encoding::kJson);
  EXPECT_EQ(p.rejected_spans, 4);

  // Empty (full success) and garbage: nothing rejected.
  EXPECT_EQ(ParseExportResponse("", ExporterOptions::Encoding::kProtobuf).rejected_spans, 0);
  EXPECT_EQ(ParseExportResponse("{}", ExporterOptions::Encoding::kJson).rejected_spans, 0);
  EXPECT_EQ(
      ParseExportResponse("\x0a\x05\x08", ExporterOptions::Encoding::kProtobuf).rejected_spans, 0);
  EXPECT_EQ(ParseExportResponse("not json", ExporterOptions::Encoding::kJson).rejected_spans, 0);
}

}  // namespace
}  // namespace aegis::telemetry
