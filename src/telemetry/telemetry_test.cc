// W3C traceparent parsing, span ids, StartSpan (joining a trace, sampling) and the UTF-8 clean-up
// of exported strings.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>

#include "common/json.h"
#include "telemetry/otlp.h"
#include "telemetry/span.h"
#include "telemetry/trace_context.h"

namespace aegis::telemetry {
namespace {

// The example from the W3C Trace Context recommendation.
constexpr std::string_view kExample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

TEST(Traceparent, ParsesTheSpecExample) {
  TraceContext c = ParseTraceparent(kExample);
  ASSERT_TRUE(c.valid);
  EXPECT_TRUE(c.sampled);
  EXPECT_EQ(HexId(c.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(HexId(c.span_id), "00f067aa0ba902b7");
  EXPECT_EQ(FormatTraceparent(c), kExample);
}

TEST(Traceparent, SampledIsBitZeroOfTheFlags) {
  EXPECT_FALSE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").sampled);
  EXPECT_TRUE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").valid);
  // Other bits (e.g. level 2's random-trace-id flag) are allowed and ignored.
  TraceContext c = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
  EXPECT_TRUE(c.valid);
  EXPECT_TRUE(c.sampled);
  c = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe");
  EXPECT_TRUE(c.valid);
  EXPECT_FALSE(c.sampled);
  EXPECT_EQ(FormatTraceparent(c), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
}

TEST(Traceparent, IgnoresSurroundingWhitespace) {
  EXPECT_TRUE(ParseTraceparent(std::string(" \t") + std::string(kExample) + " ").valid);
}

TEST(Traceparent, RefusesUpperCaseHex) {
  EXPECT_FALSE(ParseTraceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").valid);
  EXPECT_FALSE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01").valid);
  EXPECT_FALSE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A").valid);
  EXPECT_FALSE(ParseTraceparent("0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").valid);
}

TEST(Traceparent, RefusesAllZeroIds) {
  EXPECT_FALSE(ParseTraceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").valid);
  EXPECT_FALSE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01").valid);
}

TEST(Traceparent, RefusesWrongLengthsAndSeparators) {
  const std::string good(kExample);
  EXPECT_FALSE(ParseTraceparent("").valid);
  EXPECT_FALSE(ParseTraceparent("00").valid);
  EXPECT_FALSE(ParseTraceparent(good.substr(0, 54)).valid);  // flags one digit short
  EXPECT_FALSE(ParseTraceparent(good + "0").valid);          // version 00: exactly 55
  EXPECT_FALSE(ParseTraceparent(good + "-").valid);          // version 00: no more fields
  EXPECT_FALSE(ParseTraceparent(good + "-extra").valid);
  EXPECT_FALSE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01").valid);
  EXPECT_FALSE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e47366-0f067aa0ba902b7-01").valid);
  EXPECT_FALSE(ParseTraceparent("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01").valid);
  EXPECT_FALSE(ParseTraceparent("000-bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").valid);
  EXPECT_FALSE(ParseTraceparent("0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011").valid);
  EXPECT_FALSE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g").valid);
  EXPECT_FALSE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01").valid);
  EXPECT_FALSE(ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1").valid);
  // A NUL inside: the length is right, the characters are not.
  std::string nul = good;
  nul[10] = '\0';
  EXPECT_FALSE(ParseTraceparent(nul).valid);
}

TEST(Traceparent, RefusesVersionFf) {
  EXPECT_FALSE(ParseTraceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").valid);
  EXPECT_FALSE(
      ParseTraceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more").valid);
}

TEST(Traceparent, AcceptsFutureVersionsPerTheSpecRules) {
  // A higher version is parsed with version 00's layout; it may append "-" and more fields.
  TraceContext c = ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(c.valid);
  EXPECT_TRUE(c.sampled);
  c = ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever.x");
  ASSERT_TRUE(c.valid);
  EXPECT_EQ(HexId(c.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(HexId(c.span_id), "00f067aa0ba902b7");
  EXPECT_TRUE(c.sampled);
  // ...but the flags must be followed by the end or a dash, and the header may not be short.
  EXPECT_FALSE(ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x").valid);
  EXPECT_FALSE(ParseTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0").valid);
  // The same rules on the ids as version 00.
  EXPECT_FALSE(ParseTraceparent("01-00000000000000000000000000000000-00f067aa0ba902b7-01-x").valid);
  EXPECT_FALSE(ParseTraceparent("01-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01-x").valid);
  // We always send version 00.
  EXPECT_EQ(FormatTraceparent(c), kExample);
}

TEST(Ids, AreRandomAndNeverZero) {
  std::set<std::string> traces, spans;
  for (int i = 0; i < 1000; ++i) {
    TraceId t = NewTraceId();
    SpanId s = NewSpanId();
    EXPECT_NE(t, TraceId{});
    EXPECT_NE(s, SpanId{});
    traces.insert(HexId(t));
    spans.insert(HexId(s));
  }
  EXPECT_EQ(traces.size(), 1000u);
  EXPECT_EQ(spans.size(), 1000u);
}

TEST(StartSpan, JoinsAValidParent) {
  TraceContext parent = ParseTraceparent(kExample);
  Span s = StartSpan("aegis.decide", parent, 1700000000000000000, /*sample_ratio=*/0);
  EXPECT_EQ(s.name, "aegis.decide");
  EXPECT_TRUE(s.context.valid);
  EXPECT_EQ(s.context.trace_id, parent.trace_id);
  EXPECT_TRUE(s.has_parent);
  EXPECT_EQ(s.parent_span_id, parent.span_id);
  EXPECT_NE(s.context.span_id, parent.span_id);
  EXPECT_NE(s.context.span_id, SpanId{});
  EXPECT_EQ(s.start_unix_nanos, 1700000000000000000);
  EXPECT_EQ(s.kind, kSpanKindServer);
  // Parent-based: the caller sampled, so this span is sampled whatever the ratio.
  EXPECT_TRUE(s.context.sampled);
  // The header to pass downstream names this span as the parent.
  EXPECT_EQ(FormatTraceparent(s.context),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-" + HexId(s.context.span_id) + "-01");
}

TEST(StartSpan, ParentNotSampledStaysUnsampledAtRatioOne) {
  TraceContext parent = ParseTraceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  ASSERT_TRUE(parent.valid);
  Span s = StartSpan("aegis.decide", parent, 1, /*sample_ratio=*/1);
  EXPECT_FALSE(s.context.sampled);
  EXPECT_EQ(s.context.trace_id, parent.trace_id);
}

TEST(StartSpan, StartsANewTraceWithoutAValidParent) {
  TraceContext bad = ParseTraceparent("garbage");
  ASSERT_FALSE(bad.valid);
  Span a = StartSpan("aegis.decide", bad, 1, 1);
  Span b = StartSpan("aegis.decide", TraceContext{}, 1, 1);
  EXPECT_FALSE(a.has_parent);
  EXPECT_EQ(a.parent_span_id, SpanId{});
  EXPECT_NE(a.context.trace_id, TraceId{});
  EXPECT_NE(a.context.trace_id, b.context.trace_id);
  EXPECT_TRUE(a.context.valid);
  EXPECT_TRUE(a.context.sampled);
}

TEST(Sampling, RatioZeroAndOne) {
  for (int i = 0; i < 500; ++i) {
    EXPECT_FALSE(StartSpan("x", {}, 1, 0.0).context.sampled);
    EXPECT_FALSE(StartSpan("x", {}, 1, -1.0).context.sampled);
    EXPECT_FALSE(StartSpan("x", {}, 1, std::nan("")).context.sampled);
    EXPECT_TRUE(StartSpan("x", {}, 1, 1.0).context.sampled);
    EXPECT_TRUE(StartSpan("x", {}, 1, 7.0).context.sampled);
  }
}

TEST(Sampling, RatioIsAboutRightAndDecidedByTheTraceId) {
  int sampled = 0;
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) {
    Span s = StartSpan("x", {}, 1, 0.25);
    sampled += s.context.sampled;
    // Deterministic: the same trace id gives the same answer.
    EXPECT_EQ(s.context.sampled, SampledByRatio(s.context.trace_id, 0.25));
  }
  // 0.25 * 20000 = 5000, standard deviation ~61: ten of them either side.
  EXPECT_GT(sampled, 4400);
  EXPECT_LT(sampled, 5600);

  // The last 56 bits decide: all-ones is never sampled below 1, all-zero always above 0.
  TraceId high{};
  for (size_t i = 9; i < 16; ++i) high[i] = 0xff;
  TraceId low{};
  low[0] = 0xff;  // bytes outside the last seven do not count
  EXPECT_FALSE(SampledByRatio(high, 0.999999));
  EXPECT_TRUE(SampledByRatio(low, 0.000001));
  // Monotone in the ratio: sampled at 0.1 implies sampled at 0.5.
  for (int i = 0; i < 1000; ++i) {
    TraceId t = NewTraceId();
    if (SampledByRatio(t, 0.1)) {
      EXPECT_TRUE(SampledByRatio(t, 0.5));
    }
  }
}

TEST(Utf8, ValidTextIsCopiedAndInvalidBytesReplaced) {
  std::string out;
  AppendSanitizedUtf8(out, "Zürich ✓ 𝄞", 100);
  EXPECT_EQ(out, "Zürich ✓ 𝄞");

  out.clear();
  AppendSanitizedUtf8(out, "caf\xC3 \xFF\xFE end", 100);
  EXPECT_EQ(out, "caf\uFFFD \uFFFD\uFFFD end");

  // Overlong, surrogate, above U+10FFFF, truncated at the end.
  for (std::string bad :
       {"\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF0\x9D\x84"}) {
    out.clear();
    AppendSanitizedUtf8(out, "a" + bad + "b", 100);
    EXPECT_TRUE(common::IsValidUtf8(out)) << out;
    EXPECT_EQ(out.front(), 'a');
    EXPECT_EQ(out.back(), 'b');
    EXPECT_NE(out.find("\uFFFD"), std::string::npos);
  }
}

TEST(Utf8, BoundedAtACharacterBoundary) {
  std::string out;
  AppendSanitizedUtf8(out, std::string(5000, 'x'), 4096);
  EXPECT_EQ(out.size(), 4096u);

  out.clear();
  AppendSanitizedUtf8(out, "ab✓", 4);  // ✓ is 3 bytes: does not fit after "ab"
  EXPECT_EQ(out, "ab");

  out.clear();
  AppendSanitizedUtf8(out, "ab\xFF", 4);  // nor does U+FFFD
  EXPECT_EQ(out, "ab");

  out = "prefix:";
  AppendSanitizedUtf8(out, "𝄞𝄞", 7);  // appends; the bound counts only what is appended
  EXPECT_EQ(out, "prefix:𝄞");
}

}  // namespace
}  // namespace aegis::telemetry
