#include "telemetry/otlp.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/json.h"

#ifndef AEGIS_VERSION
#define AEGIS_VERSION "dev"
#endif

namespace aegis::telemetry {
namespace {

constexpr std::string_view kScopeName = "aegis";
constexpr std::string_view kScopeVersion = AEGIS_VERSION;

// Span.flags bits (opentelemetry/proto/trace/v1 SpanFlags).
constexpr uint32_t kFlagSampled = 0x01;
constexpr uint32_t kFlagHasIsRemote = 0x100;
constexpr uint32_t kFlagIsRemote = 0x200;

// Status.code.
constexpr int kStatusError = 2;

// Bits 0-7 are the W3C trace flags; bit 8 says bit 9 is meaningful; bit 9: the parent is remote.
// A span with a parent here always has a remote one (from a caller's traceparent).
uint32_t SpanFlags(const Span& s) {
  uint32_t flags = kFlagHasIsRemote;
  if (s.context.sampled) flags |= kFlagSampled;
  if (s.has_parent) flags |= kFlagIsRemote;
  return flags;
}

// ---- resource attributes ----

struct ResourceAttribute {
  std::string_view key, value;
};

std::vector<ResourceAttribute> ResourceAttributes(const ExporterOptions& o) {
  std::vector<ResourceAttribute> out;
  out.push_back({"service.name", o.service_name});
  auto has = [&](std::string_view key) {
    for (const auto& a : out) {
      if (a.key == key) return true;
    }
    return false;
  };
  for (const auto& [k, v] : o.resource_attributes) {
    if (!k.empty() && !has(k)) out.push_back({k, v});
  }
  // OpenTelemetry's resource semantic conventions: who produced the telemetry.
  if (!has("telemetry.sdk.name")) out.push_back({"telemetry.sdk.name", "aegis"});
  if (!has("telemetry.sdk.language")) out.push_back({"telemetry.sdk.language", "cpp"});
  if (!has("telemetry.sdk.version")) out.push_back({"telemetry.sdk.version", kScopeVersion});
  return out;
}

// Calls f(key, kind, index) for the attributes a span exports, in order, up to the limit; returns
// how many were left out (over the limit, or with an empty key, which OTLP does not allow).
enum class AttrKind { kString, kInt, kDouble, kBool };
template <typename F>
uint32_t ForEachAttribute(const SpanAttributes& a, size_t limit, F&& f) {
  size_t written = 0;
  uint32_t dropped = 0;
  auto visit = [&](const auto& list, AttrKind kind) {
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i].first.empty() || written >= limit) {
        ++dropped;
        continue;
      }
      ++written;
      f(list[i].first, kind, i);
    }
  };
  visit(a.strings, AttrKind::kString);
  visit(a.ints, AttrKind::kInt);
  visit(a.doubles, AttrKind::kDouble);
  visit(a.bools, AttrKind::kBool);
  return dropped;
}

// ---- protobuf wire format ----

enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

class ProtoWriter {
 public:
  ProtoWriter(std::string& out, size_t max_string) : out_(out), max_string_(max_string) {}

  void Varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void Tag(uint32_t field, WireType type) { Varint(uint64_t{field} << 3 | type); }
  void VarintField(uint32_t field, uint64_t v) {
    Tag(field, kVarint);
    Varint(v);
  }
  void Fixed64Field(uint32_t field, uint64_t v) {
    Tag(field, kFixed64);
    char buf[8];
    for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(v >> (8 * i));
    out_.append(buf, 8);
  }
  void Fixed32Field(uint32_t field, uint32_t v) {
    Tag(field, kFixed32);
    char buf[4];
    for (int i = 0; i < 4; ++i) buf[i] = static_cast<char>(v >> (8 * i));
    out_.append(buf, 4);
  }
  void BytesField(uint32_t field, const uint8_t* data, size_t size) {
    Tag(field, kLengthDelimited);
    Varint(size);
    out_.append(reinterpret_cast<const char*>(data), size);
  }
  // A string field, made valid UTF-8 and bounded. Written even when empty: for oneof members.
  void StringField(uint32_t field, std::string_view s) {
    size_t at = Begin(field);
    AppendSanitizedUtf8(out_, s, max_string_);
    End(at);
  }

  // A plain proto3 string field: left out when empty, as proto3 serializers do.
  void OptionalStringField(uint32_t field, std::string_view s) {
    if (!s.empty()) StringField(field, s);
  }
  void OptionalFixed64Field(uint32_t field, uint64_t v) {
    if (v != 0) Fixed64Field(field, v);
  }

  // Starts a length-delimited field whose length is known only at End: one byte is reserved for
  // it, and End widens the prefix (moving the body) when the body turns out to need more.
  size_t Begin(uint32_t field) {
    Tag(field, kLengthDelimited);
    out_.push_back('\0');
    return out_.size();
  }
  void End(size_t body_start) {
    size_t length = out_.size() - body_start;
    char buf[10];
    size_t n = 0;
    for (uint64_t v = length;; v >>= 7) {
      if (v < 0x80) {
        buf[n++] = static_cast<char>(v);
        break;
      }
      buf[n++] = static_cast<char>(v | 0x80);
    }
    if (n > 1) out_.insert(body_start, n - 1, '\0');
    std::memcpy(&out_[body_start - 1], buf, n);
  }

 private:
  std::string& out_;
  size_t max_string_;
};

// KeyValue{key, AnyValue{string_value}}.
void ProtoStringKeyValue(ProtoWriter& w, uint32_t field, std::string_view key,
                         std::string_view value) {
  size_t kv = w.Begin(field);
  w.OptionalStringField(1, key);
  size_t any = w.Begin(2);
  w.StringField(1, value);
  w.End(any);
  w.End(kv);
}

void ProtoSpan(ProtoWriter& w, const Span& s, const ExporterOptions& o) {
  size_t span = w.Begin(2);  // ScopeSpans.spans
  w.BytesField(1, s.context.trace_id.data(), s.context.trace_id.size());
  w.BytesField(2, s.context.span_id.data(), s.context.span_id.size());
  if (s.has_parent) w.BytesField(4, s.parent_span_id.data(), s.parent_span_id.size());
  w.OptionalStringField(5, s.name);
  if (s.kind != 0) w.VarintField(6, static_cast<uint64_t>(static_cast<int64_t>(s.kind)));
  w.OptionalFixed64Field(7, static_cast<uint64_t>(s.start_unix_nanos));
  w.OptionalFixed64Field(8, static_cast<uint64_t>(s.end_unix_nanos));
  const SpanAttributes& a = s.attributes;
  uint32_t dropped = ForEachAttribute(
      a, o.max_attributes_per_span, [&](std::string_view key, AttrKind kind, size_t i) {
        size_t kv = w.Begin(9);
        w.OptionalStringField(1, key);
        size_t any = w.Begin(2);
        // A oneof member is written even when it holds its type's default value.
        switch (kind) {
          case AttrKind::kString:
            w.StringField(1, a.strings[i].second);
            break;
          case AttrKind::kInt:
            w.VarintField(3, static_cast<uint64_t>(a.ints[i].second));
            break;
          case AttrKind::kDouble: {
            uint64_t bits;
            std::memcpy(&bits, &a.doubles[i].second, sizeof bits);
            w.Fixed64Field(4, bits);
            break;
          }
          case AttrKind::kBool:
            w.VarintField(2, a.bools[i].second ? 1 : 0);
            break;
        }
        w.End(any);
        w.End(kv);
      });
  if (dropped > 0) w.VarintField(10, dropped);
  if (s.error) {
    size_t status = w.Begin(15);
    w.OptionalStringField(2, s.status_message);
    w.VarintField(3, kStatusError);
    w.End(status);
  }
  w.Fixed32Field(16, SpanFlags(s));
  w.End(span);
}

// ---- OTLP/JSON ----

class JsonWriter {
 public:
  JsonWriter(std::string& out, size_t max_string) : out_(out), max_string_(max_string) {}

  void Raw(std::string_view s) { out_.append(s); }
  void String(std::string_view s) {
    scratch_.clear();
    AppendSanitizedUtf8(scratch_, s, max_string_);
    common::AppendJsonString(out_, scratch_);
  }
  void Hex(const uint8_t* data, size_t size) {
    static constexpr char kDigits[] = "0123456789abcdef";
    out_.push_back('"');
    for (size_t i = 0; i < size; ++i) {
      out_.push_back(kDigits[data[i] >> 4]);
      out_.push_back(kDigits[data[i] & 0xf]);
    }
    out_.push_back('"');
  }
  // 64-bit integers are strings in the proto3 JSON mapping (JavaScript numbers lose them).
  void Int64String(int64_t v) {
    out_.push_back('"');
    out_ += std::to_string(v);
    out_.push_back('"');
  }
  void Uint64String(uint64_t v) {
    out_.push_back('"');
    out_ += std::to_string(v);
    out_.push_back('"');
  }
  void Number(int64_t v) { out_ += std::to_string(v); }
  void Double(double d) {
    if (std::isfinite(d)) {
      out_ += common::FormatDouble(d);
    } else {
      out_.push_back('"');  // "NaN", "Infinity", "-Infinity": strings in proto3 JSON
      out_ += common::FormatDouble(d);
      out_.push_back('"');
    }
  }

 private:
  std::string& out_;
  size_t max_string_;
  std::string scratch_;
};

void JsonStringKeyValue(JsonWriter& w, std::string_view key, std::string_view value) {
  w.Raw("{\"key\":");
  w.String(key);
  w.Raw(",\"value\":{\"stringValue\":");
  w.String(value);
  w.Raw("}}");
}

void JsonSpan(JsonWriter& w, const Span& s, const ExporterOptions& o) {
  w.Raw("{\"traceId\":");
  w.Hex(s.context.trace_id.data(), s.context.trace_id.size());
  w.Raw(",\"spanId\":");
  w.Hex(s.context.span_id.data(), s.context.span_id.size());
  if (s.has_parent) {
    w.Raw(",\"parentSpanId\":");
    w.Hex(s.parent_span_id.data(), s.parent_span_id.size());
  }
  w.Raw(",\"flags\":");
  w.Number(SpanFlags(s));
  w.Raw(",\"name\":");
  w.String(s.name);
  w.Raw(",\"kind\":");
  w.Number(s.kind);
  w.Raw(",\"startTimeUnixNano\":");
  w.Uint64String(static_cast<uint64_t>(s.start_unix_nanos));
  w.Raw(",\"endTimeUnixNano\":");
  w.Uint64String(static_cast<uint64_t>(s.end_unix_nanos));
  w.Raw(",\"attributes\":[");
  const SpanAttributes& a = s.attributes;
  bool first = true;
  uint32_t dropped = ForEachAttribute(
      a, o.max_attributes_per_span, [&](std::string_view key, AttrKind kind, size_t i) {
        w.Raw(first ? "{\"key\":" : ",{\"key\":");
        first = false;
        w.String(key);
        switch (kind) {
          case AttrKind::kString:
            w.Raw(",\"value\":{\"stringValue\":");
            w.String(a.strings[i].second);
            break;
          case AttrKind::kInt:
            w.Raw(",\"value\":{\"intValue\":");
            w.Int64String(a.ints[i].second);
            break;
          case AttrKind::kDouble:
            w.Raw(",\"value\":{\"doubleValue\":");
            w.Double(a.doubles[i].second);
            break;
          case AttrKind::kBool:
            w.Raw(a.bools[i].second ? ",\"value\":{\"boolValue\":true"
                                    : ",\"value\":{\"boolValue\":false");
            break;
        }
        w.Raw("}}");
      });
  w.Raw("]");
  if (dropped > 0) {
    w.Raw(",\"droppedAttributesCount\":");
    w.Number(dropped);
  }
  if (s.error) {
    w.Raw(",\"status\":{\"code\":2");
    if (!s.status_message.empty()) {
      w.Raw(",\"message\":");
      w.String(s.status_message);
    }
    w.Raw("}");
  }
  w.Raw("}");
}

// ---- the response ----

// Reads a varint at `p`; false when truncated or longer than 10 bytes.
bool ReadVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 70 && !in.empty(); shift += 7) {
    auto b = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= uint64_t{b & 0x7fu} << shift;
    if (b < 0x80) return true;
  }
  return false;
}

// Skips one field of the given wire type; false when the input is malformed.
bool SkipField(std::string_view& in, uint64_t type) {
  uint64_t v;
  switch (type) {
    case kVarint:
      return ReadVarint(in, v);
    case kFixed64:
      if (in.size() < 8) return false;
      in.remove_prefix(8);
      return true;
    case kLengthDelimited:
      if (!ReadVarint(in, v) || v > in.size()) return false;
      in.remove_prefix(v);
      return true;
    case kFixed32:
      if (in.size() < 4) return false;
      in.remove_prefix(4);
      return true;
    default:
      return false;
  }
}

// Walks the fields of one message, calling f(field, type, in) positioned at each value; f must
// consume the value (or return false to have it skipped). Returns false on malformed input.
template <typename F>
bool ForEachField(std::string_view in, F&& f) {
  while (!in.empty()) {
    uint64_t tag;
    if (!ReadVarint(in, tag)) return false;
    uint64_t field = tag >> 3, type = tag & 7;
    if (!f(field, type, in) && !SkipField(in, type)) return false;
  }
  return true;
}

bool ReadLengthDelimited(std::string_view& in, std::string_view& value) {
  uint64_t n;
  if (!ReadVarint(in, n) || n > in.size()) return false;
  value = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

PartialSuccess ParseProtobufResponse(std::string_view body) {
  PartialSuccess result;
  std::string_view partial;
  bool ok = ForEachField(body, [&](uint64_t field, uint64_t type, std::string_view& in) {
    if (field != 1 || type != kLengthDelimited) return false;
    return ReadLengthDelimited(in, partial);
  });
  if (!ok) return {};
  ok = ForEachField(partial, [&](uint64_t field, uint64_t type, std::string_view& in) {
    if (field == 1 && type == kVarint) {
      uint64_t v;
      if (!ReadVarint(in, v)) return false;
      result.rejected_spans = static_cast<int64_t>(v);
      return true;
    }
    if (field == 2 && type == kLengthDelimited) {
      std::string_view message;
      if (!ReadLengthDelimited(in, message)) return false;
      result.error_message.clear();
      AppendSanitizedUtf8(result.error_message, message, 1024);
      return true;
    }
    return false;
  });
  if (!ok) return {};
  return result;
}

PartialSuccess ParseJsonResponse(std::string_view body) {
  PartialSuccess result;
  auto json = common::ParseJson(body);
  if (!json.ok() || !json->is_object()) return result;
  const common::Json* partial = json->Find("partialSuccess");
  if (!partial) partial = json->Find("partial_success");
  if (!partial || !partial->is_object()) return result;
  const common::Json* rejected = partial->Find("rejectedSpans");
  if (!rejected) rejected = partial->Find("rejected_spans");
  if (rejected && rejected->is_int()) {
    result.rejected_spans = rejected->as_int();
  } else if (rejected && rejected->is_string()) {
    // int64 as a decimal string, per the proto3 JSON mapping.
    const std::string& s = rejected->as_string();
    int64_t v = 0;
    bool digits = !s.empty() && s.size() <= 18;
    for (char c : s) digits = digits && c >= '0' && c <= '9';
    if (digits) {
      for (char c : s) v = v * 10 + (c - '0');
      result.rejected_spans = v;
    }
  }
  const common::Json* message = partial->Find("errorMessage");
  if (!message) message = partial->Find("error_message");
  if (message && message->is_string()) {
    AppendSanitizedUtf8(result.error_message, message->as_string(), 1024);
  }
  return result;
}

}  // namespace

void AppendSanitizedUtf8(std::string& out, std::string_view s, size_t max_bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t written = 0;
  size_t i = 0;
  while (i < n) {
    // Copy a run of well-formed characters at once.
    size_t run_start = i;
    size_t len = 0;
    // ASCII eight bytes at a time, within what still fits: the common case for attribute values.
    size_t ascii_end =
        run_start + std::min(n - run_start, max_bytes - std::min(max_bytes, written));
    while (i + 8 <= ascii_end) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      if (word & 0x8080808080808080ULL) break;
      i += 8;
    }
    while (i < n) {
      uint8_t b = p[i];
      if (b < 0x80) {
        len = 1;
      } else {
        auto cont = [&](size_t k, uint8_t lo = 0x80, uint8_t hi = 0xBF) {
          return i + k < n && p[i + k] >= lo && p[i + k] <= hi;
        };
        if (b >= 0xC2 && b <= 0xDF && cont(1)) {
          len = 2;
        } else if (b == 0xE0 && cont(1, 0xA0) && cont(2)) {
          len = 3;
        } else if (((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) && cont(1) && cont(2)) {
          len = 3;
        } else if (b == 0xED && cont(1, 0x80, 0x9F) && cont(2)) {  // no surrogates
          len = 3;
        } else if (b == 0xF0 && cont(1, 0x90) && cont(2) && cont(3)) {
          len = 4;
        } else if (b >= 0xF1 && b <= 0xF3 && cont(1) && cont(2) && cont(3)) {
          len = 4;
        } else if (b == 0xF4 && cont(1, 0x80, 0x8F) && cont(2) && cont(3)) {  // <= U+10FFFF
          len = 4;
        } else {
          len = 0;  // not the start of a well-formed sequence
        }
      }
      if (len == 0 || written + (i - run_start) + len > max_bytes) break;
      i += len;
    }
    out.append(s.data() + run_start, i - run_start);
    written += i - run_start;
    if (i >= n) return;
    if (len != 0) return;  // the next character would not fit
    if (written + kReplacement.size() > max_bytes) return;
    out.append(kReplacement);
    written += kReplacement.size();
    ++i;
  }
}

std::string_view ContentType(ExporterOptions::Encoding encoding) {
  return encoding == ExporterOptions::Encoding::kJson ? "application/json"
                                                      : "application/x-protobuf";
}

std::string EncodeProtobuf(const std::vector<Span>& spans, const ExporterOptions& o) {
  // The small head (resource, scope) and the spans are written apart, so the two enclosing
  // lengths are known before the spans are copied behind them once, instead of moving the whole
  // batch to widen each length prefix.
  std::string resource, scope;
  // The spans' scratch buffer is kept per thread (the exporter's), so a batch does not pay for
  // fresh pages each time; only a very large one is given back.
  thread_local std::string body;
  body.clear();
  if (body.capacity() > (8u << 20)) body.shrink_to_fit();
  ProtoWriter rw(resource, o.max_attribute_value_bytes);
  size_t r = rw.Begin(1);  // ResourceSpans.resource
  for (const ResourceAttribute& a : ResourceAttributes(o)) {
    ProtoStringKeyValue(rw, 1, a.key, a.value);  // Resource.attributes
  }
  rw.End(r);
  ProtoWriter sw(scope, o.max_attribute_value_bytes);
  size_t sc = sw.Begin(1);  // ScopeSpans.scope
  sw.OptionalStringField(1, kScopeName);
  sw.OptionalStringField(2, kScopeVersion);
  sw.End(sc);
  ProtoWriter bw(body, o.max_attribute_value_bytes);
  for (const Span& s : spans) ProtoSpan(bw, s, o);  // ScopeSpans.spans

  const size_t scope_spans_size = scope.size() + body.size();
  std::string scope_spans_head;
  ProtoWriter hw(scope_spans_head, 0);
  hw.Tag(2, kLengthDelimited);  // ResourceSpans.scope_spans
  hw.Varint(scope_spans_size);
  const size_t resource_spans_size = resource.size() + scope_spans_head.size() + scope_spans_size;

  std::string out;
  out.reserve(16 + resource_spans_size);
  ProtoWriter w(out, 0);
  w.Tag(1, kLengthDelimited);  // ExportTraceServiceRequest.resource_spans
  w.Varint(resource_spans_size);
  out += resource;
  out += scope_spans_head;
  out += scope;
  out += body;
  return out;
}

std::string EncodeJson(const std::vector<Span>& spans, const ExporterOptions& o) {
  std::string out;
  out.reserve(256 + spans.size() * 1024);
  JsonWriter w(out, o.max_attribute_value_bytes);
  w.Raw("{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  bool first = true;
  for (const ResourceAttribute& a : ResourceAttributes(o)) {
    if (!first) w.Raw(",");
    first = false;
    JsonStringKeyValue(w, a.key, a.value);
  }
  w.Raw("]},\"scopeSpans\":[{\"scope\":{\"name\":");
  w.String(kScopeName);
  w.Raw(",\"version\":");
  w.String(kScopeVersion);
  w.Raw("},\"spans\":[");
  for (size_t i = 0; i < spans.size(); ++i) {
    if (i > 0) w.Raw(",");
    JsonSpan(w, spans[i], o);
  }
  w.Raw("]}]}]}");
  return out;
}

std::string Encode(const std::vector<Span>& spans, const ExporterOptions& o) {
  return o.encoding == ExporterOptions::Encoding::kJson ? EncodeJson(spans, o)
                                                        : EncodeProtobuf(spans, o);
}

PartialSuccess ParseExportResponse(std::string_view body, ExporterOptions::Encoding encoding) {
  if (body.empty()) return {};
  return encoding == ExporterOptions::Encoding::kJson ? ParseJsonResponse(body)
                                                      : ParseProtobufResponse(body);
}

}  // namespace aegis::telemetry
