#include "engine/call_context.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace aegis::engine {
namespace {

using ::testing::HasSubstr;

std::string ErrorOf(std::string_view json) {
  auto c = ParseCall(json, 0);
  return c.ok() ? "" : c.status().message();
}

TEST(CallContextTest, ParsesAFullCall) {
  auto c = ParseCall(R"({"tenant":"acme","agent":"a","tool":"t","action":"x",
      "params":{"amount":7000},"cost_usd":0.25,
      "request":{"method":"post","host":"API.example.com.","path":"/v1/p%61y?b=2&a=x%20y",
                 "headers":{"X-Trace":"1"}}})",
                     5);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tenant, "acme");
  EXPECT_EQ(*c->cost, 250000);
  EXPECT_EQ(c->method(), "POST");
  EXPECT_EQ(c->host(), "api.example.com");
  EXPECT_EQ(c->path(), "/v1/pay");
  EXPECT_EQ(c->request.Find("query")->Find("a")->as_string(), "x y");
  EXPECT_EQ(c->request.Find("headers")->Find("x-trace")->as_string(), "1");
  EXPECT_EQ(c->now_unix_nanos, 5);
}

TEST(CallContextTest, RefusesHostileInput) {
  EXPECT_THAT(ErrorOf(R"({"agent":"a","tool":"t","agent":"b"})"), HasSubstr("duplicate key"));
  EXPECT_THAT(ErrorOf("{\"agent\":\"a\xff\",\"tool\":\"t\"}"), HasSubstr("UTF-8"));
  EXPECT_THAT(ErrorOf(R"({"agent":"a","tool":"t","extra":1})"), HasSubstr("unknown field"));
  EXPECT_THAT(ErrorOf(R"({"agent":"a b","tool":"t"})"), HasSubstr("agent must be"));
  EXPECT_THAT(ErrorOf(R"({"tool":"t"})"), HasSubstr("agent is required"));
  EXPECT_THAT(ErrorOf(R"({"agent":"a"})"), HasSubstr("give tool"));
  EXPECT_THAT(ErrorOf(R"({"agent":"a","tool":"t","identity":{"sub":"x"}})"),
              HasSubstr("verified agent token"));
  EXPECT_THAT(ErrorOf(R"({"agent":"a","tool":"t","cost_usd":-1})"), HasSubstr("cost_usd"));
  EXPECT_THAT(ErrorOf(R"({"agent":"a","tool":"t","cost_usd":"5"})"), HasSubstr("cost_usd"));
  EXPECT_THAT(ErrorOf(R"({"agent":"a","tool":"t","params":[1]})"), HasSubstr("params"));
  for (const char* path : {"/a/../b", "/a/%2e%2e/b", "/a%2fb", "/a//b", "/a\\b", "/a%00",
                           "/a%zz", "/a%4", "relative", "/a/./b"}) {
    std::string json = std::string(R"({"agent":"a","tool":"t","request":{"path":")") + path +
                       R"("}})";
    EXPECT_THAT(ErrorOf(json), HasSubstr("request.path")) << path;
  }
  EXPECT_THAT(ErrorOf(R"({"agent":"a","request":{"host":"user@evil.com"}})"),
              HasSubstr("userinfo"));
  EXPECT_THAT(ErrorOf(R"({"agent":"a","tool":"t","request":{"path":"/x?a=1&a=2"}})"),
              HasSubstr("given twice"));
  EXPECT_THAT(ErrorOf(R"({"agent":"a","tool":"t","request":{"headers":{"X-A":"1","x-a":"2"}}})"),
              HasSubstr("given twice"));
  std::string deep = R"({"agent":"a","tool":"t","params":)" + std::string(100, '[') +
                     std::string(100, ']') + "}";
  EXPECT_FALSE(ParseCall(deep, 0).ok());
}

}  // namespace
}  // namespace aegis::engine
