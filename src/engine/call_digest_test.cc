#include "engine/call_digest.h"

#include "gtest/gtest.h"

namespace aegis::engine {
namespace {

common::Json Parse(std::string_view text) {
  auto j = common::ParseJson(text);
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? *j : common::Json();
}

// The expected texts and digests come from Node: JSON.stringify over recursively key-sorted
// objects (which is RFC 8785 for these values) and crypto's SHA-256.
TEST(CallDigestTest, MatchesJcsAsJavaScriptWritesIt) {
  common::Json params = Parse(R"({"currency":"usd","amount":7000})");
  EXPECT_EQ(CanonicalCall("acme", "finance-agent", "stripe", "create_payment", params),
            R"({"action":"create_payment","agent":"finance-agent","params":{"amount":7000,)"
            R"("currency":"usd"},"tenant":"acme","tool":"stripe"})");
  EXPECT_EQ(CallDigest("acme", "finance-agent", "stripe", "create_payment", params),
            "158090f2a96b1c21d3201b2670858c7d27258ac8797d7dfcd30ae6b2f0fa2448");

  params = Parse(
      "{\"z\":[1.5,1e21,1e-7,0.000001,123456789012,-0.0,7000.0,1e300],"
      "\"\xC3\xA9\":\"\\u0001\\n\\\"\\\\/\",\"\xF0\x9F\x98\x80\":1,\"\xEF\xBF\xBF\":2,"
      "\"b\":{\"y\":null,\"x\":true}}");
  EXPECT_EQ(CanonicalCall("", "a", "t", "x", params),
            "{\"action\":\"x\",\"agent\":\"a\",\"params\":{\"b\":{\"x\":true,\"y\":null},"
            "\"z\":[1.5,1e+21,1e-7,0.000001,123456789012,0,7000,1e+300],"
            "\"\xC3\xA9\":\"\\u0001\\n\\\"\\\\/\",\"\xF0\x9F\x98\x80\":1,\"\xEF\xBF\xBF\":2},"
            "\"tenant\":\"\",\"tool\":\"t\"}");
  EXPECT_EQ(CallDigest("", "a", "t", "x", params),
            "1dc62726dc9cfaf6993302d13e830bbd00ae9f948b36cd077fa70e7565a9b1a9");
}

TEST(CallDigestTest, AnyChangeToTheCallChangesTheDigest) {
  common::Json params = Parse(R"({"amount":7000,"currency":"usd"})");
  std::string d = CallDigest("acme", "fa", "stripe", "pay", params);
  EXPECT_EQ(d, CallDigest("acme", "fa", "stripe", "pay", Parse(R"({"currency":"usd","amount":7000.0})")));
  EXPECT_NE(d, CallDigest("acme", "fa", "stripe", "pay", Parse(R"({"amount":7001,"currency":"usd"})")));
  EXPECT_NE(d, CallDigest("acme", "fa", "stripe", "pay", Parse(R"({"amount":"7000","currency":"usd"})")));
  EXPECT_NE(d, CallDigest("acme", "fb", "stripe", "pay", params));
  EXPECT_NE(d, CallDigest("globex", "fa", "stripe", "pay", params));
  EXPECT_NE(d, CallDigest("acme", "fa", "stripe", "refund", params));
  EXPECT_NE(d, CallDigest("acme", "fa", "stripe2", "pay", params));
  EXPECT_NE(d, CallDigest("acme", "fa", "stripe", "pay",
                          Parse(R"({"amount":7000,"currency":"usd","memo":null})")));
}

TEST(CallDigestTest, NumbersAsEcmaScript) {
  EXPECT_EQ(EcmaScriptNumber(0.1), "0.1");
  EXPECT_EQ(EcmaScriptNumber(-2.5), "-2.5");
  EXPECT_EQ(EcmaScriptNumber(100), "100");
  EXPECT_EQ(EcmaScriptNumber(1e20), "100000000000000000000");
  EXPECT_EQ(EcmaScriptNumber(1e21), "1e+21");
  EXPECT_EQ(EcmaScriptNumber(1.5e-7), "1.5e-7");
  EXPECT_EQ(EcmaScriptNumber(123.456e-3), "0.123456");
  EXPECT_EQ(EcmaScriptNumber(5e-324), "5e-324");
  EXPECT_EQ(EcmaScriptNumber(1.7976931348623157e308), "1.7976931348623157e+308");
}

}  // namespace
}  // namespace aegis::engine
