#include "common/json.h"

#include <string>

#include "gtest/gtest.h"

namespace aegis::common {
namespace {

TEST(JsonTest, ParsesIntegersAndDoublesDistinctly) {
  auto j = ParseJson(R"({"a": 7000, "b": 7000.0, "c": 1e3, "d": -0, "e": 9223372036854775808})");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_TRUE(j->Find("a")->is_int());
  EXPECT_EQ(j->Find("a")->as_int(), 7000);
  EXPECT_TRUE(j->Find("b")->is_double());
  EXPECT_TRUE(j->Find("c")->is_double());
  EXPECT_TRUE(j->Find("d")->is_int());
  // Beyond int64: kept as a double rather than refused or wrapped.
  EXPECT_TRUE(j->Find("e")->is_double());
}

TEST(JsonTest, RejectsDuplicateKeysWithLocation) {
  auto j = ParseJson("{\"a\": 1,\n \"a\": 2}");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().message(), "line 2, column 2: duplicate key \"a\"");
}

TEST(JsonTest, RejectsDuplicateKeysInNestedObjects) {
  EXPECT_FALSE(ParseJson(R"({"p": {"x": 1, "y": 2, "x": 3}})").ok());
}

TEST(JsonTest, RejectsInvalidUtf8AndLoneSurrogates) {
  EXPECT_FALSE(ParseJson("\"\xff\"").ok());
  EXPECT_FALSE(ParseJson("\"\xc0\xaf\"").ok());          // overlong '/'
  EXPECT_FALSE(ParseJson("\"\xed\xa0\x80\"").ok());      // UTF-8 encoded surrogate
  EXPECT_FALSE(ParseJson(R"("\ud800")").ok());           // lone high
  EXPECT_FALSE(ParseJson(R"("\udc00x")").ok());          // lone low
  EXPECT_FALSE(ParseJson(R"("\ud800\u0041")").ok());     // high followed by non-low
  auto ok = ParseJson(R"("\ud83d\ude00")");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->as_string(), "\xF0\x9F\x98\x80");
}

TEST(JsonTest, RejectsMalformedDocuments) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "+1", "nul", "\"a",
                          "[1] [2]", "{'a':1}", "\"tab\there\"", "1e999", "NaN", "[\"\\x\"]"}) {
    EXPECT_FALSE(ParseJson(bad).ok()) << bad;
  }
}

TEST(JsonTest, EnforcesDepthAndSizeLimits) {
  std::string deep(100, '[');
  deep += std::string(100, ']');
  auto j = ParseJson(deep);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(ParseJson(deep, {.max_bytes = 1 << 20, .max_depth = 200}).ok());
  EXPECT_EQ(ParseJson(std::string(100, ' ') + "1", {.max_bytes = 50}).status().code(),
            StatusCode::kResourceExhausted);
}

TEST(JsonTest, ManyKeysAreCheckedQuickly) {
  // 50,000 distinct keys and one duplicate at the end: must be found without quadratic work.
  std::string doc = "{";
  for (int i = 0; i < 50000; ++i) doc += "\"k" + std::to_string(i) + "\":1,";
  doc += "\"k7\":2}";
  auto j = ParseJson(doc, {.max_bytes = 1 << 22});
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("duplicate key \"k7\""), std::string::npos);
}

TEST(JsonTest, CanonicalFormSortsKeysAndIsStable) {
  auto a = ParseJson(R"({"b": [1, 2.5, "x\n"], "a": {"z": null, "y": true}})");
  auto b = ParseJson(R"({"a":{"y":true,"z":null},"b":[1,2.5,"x\n"]})");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->Canonical(), R"({"a":{"y":true,"z":null},"b":[1,2.5,"x\n"]})");
  EXPECT_EQ(a->Canonical(), b->Canonical());
  EXPECT_EQ(Json::Double(3).Canonical(), "3.0");
  EXPECT_EQ(ParseJson(Json::String("\x01").Canonical())->as_string(), "\x01");
}

TEST(JsonTest, ObjectsOfAnySizeComeOutSortedWhateverTheInputOrder) {
  for (int n : {1, 2, 5, 31, 32, 33, 100}) {
    std::string forward = "{", backward = "{";
    for (int i = 0; i < n; ++i) {
      std::string member = "\"k" + std::to_string(1000 + i) + "\":" + std::to_string(i);
      forward += (i ? "," : "") + member;
      std::string back = "\"k" + std::to_string(1000 + n - 1 - i) + "\":" + std::to_string(n - 1 - i);
      backward += (i ? "," : "") + back;
    }
    forward += "}";
    backward += "}";
    auto a = ParseJson(forward), b = ParseJson(backward);
    ASSERT_TRUE(a.ok() && b.ok()) << n;
    EXPECT_EQ(a->Canonical(), forward) << n;  // keys were written in sorted order
    EXPECT_EQ(b->Canonical(), forward) << n;
    EXPECT_EQ(b->Find("k1000")->as_int(), 0);
  }
}

TEST(JsonTest, ObjectBuilderRefusesDuplicates) {
  std::vector<Json::Member> m;
  m.push_back({"a", Json::Int(1)});
  m.push_back({"a", Json::Int(2)});
  EXPECT_FALSE(Json::Object(std::move(m)).ok());
}


TEST(JsonTest, Utf8CheckAtEveryOffsetOfLongAsciiRuns) {
  // The check reads ASCII eight bytes at a time: every kind of sequence, at every alignment.
  for (size_t prefix = 0; prefix < 20; ++prefix) {
    std::string ascii(prefix, 'a');
    SCOPED_TRACE(prefix);
    EXPECT_TRUE(IsValidUtf8(ascii + "\xC3\xA9" + ascii));               // é
    EXPECT_TRUE(IsValidUtf8(ascii + "\xF0\x9F\x98\x80" + "tail-text"));  // U+1F600
    EXPECT_TRUE(IsValidUtf8(ascii + std::string("\0\x7F", 2) + "12345678"));
    EXPECT_FALSE(IsValidUtf8(ascii + "\xC3" + "12345678"));            // cut short
    EXPECT_FALSE(IsValidUtf8(ascii + "\x80" + "12345678"));            // lone continuation
    EXPECT_FALSE(IsValidUtf8(ascii + "\xED\xA0\x80" + "12345678"));    // surrogate
    EXPECT_FALSE(IsValidUtf8(ascii + "\xC0\xAF" + "12345678"));         // overlong
    EXPECT_FALSE(IsValidUtf8(ascii + "1234567\xFF"));
  }
}
}  // namespace
}  // namespace aegis::common
