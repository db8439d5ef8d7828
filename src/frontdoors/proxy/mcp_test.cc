#include "frontdoors/proxy/mcp.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace aegis::proxy::mcp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Split(std::string_view stream, size_t piece) {
  SseSplitter s;
  std::vector<std::string> events;
  for (size_t i = 0; i < stream.size(); i += piece) {
    EXPECT_TRUE(s.Feed(stream.substr(i, piece), 1 << 20));
    while (auto e = s.Next()) events.push_back(*e);
  }
  return events;
}

// Events end at a blank line whatever the line ends (LF, CRLF, CR) and however the bytes are
// cut into pieces — a CR at the end of one piece and its LF at the start of the next included.
TEST(SseSplitterTest, SplitsAtBlankLinesAcrossPieces) {
  const std::string stream =
      "event: message\ndata: {\"a\":1}\n\n"
      "id: 7\r\ndata: {\"b\":2}\r\n\r\n"
      "data: x\r\rdata: tail";
  for (size_t piece : {1u, 2u, 3u, 7u, 100u}) {
    EXPECT_THAT(Split(stream, piece),
                ElementsAre("event: message\ndata: {\"a\":1}\n\n", "id: 7\r\ndata: {\"b\":2}\r\n\r\n",
                            "data: x\r\r"))
        << "pieces of " << piece;
  }
}

TEST(SseSplitterTest, RefusesAnEventLargerThanTheLimit) {
  SseSplitter s;
  EXPECT_TRUE(s.Feed("data: 0123456789", 16));
  EXPECT_FALSE(s.Feed("0123456789", 16));
}

TEST(SseTest, DataLinesAreJoinedAndReplacedKeepingTheOtherFields) {
  EXPECT_EQ(EventData("event: message\ndata: {\"a\":\ndata:1}\n\n"), "{\"a\":\n1}");
  EXPECT_EQ(EventData(": a comment\n\n"), std::nullopt);
  EXPECT_EQ(ReplaceEventData("id: 3\r\nevent: message\r\ndata: {}\r\ndata: more\r\n\r\n", "{\"x\":1}"),
            "id: 3\nevent: message\ndata: {\"x\":1}\n\n");
}

TEST(JsonRpcTest, ErrorMessageEchoesTheIdOrNull) {
  common::Json id = common::Json::Int(7);
  EXPECT_EQ(ErrorMessage(&id, kInvalidParams, "bad \"name\""),
            R"({"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"bad \"name\""}})");
  EXPECT_EQ(ErrorMessage(nullptr, kParseError, "x"),
            R"({"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}})");
}

TEST(JsonRpcTest, RefusalIsAToolErrorCarryingTheDecision) {
  auto decision = common::ParseJson(
      R"({"decision_id":"0191","decision":"approval_needed","approval":{"id":"apr_123"},)"
      R"("reasons":[{"code":"rule","rule":"big","message":"Payments above $5,000 need two approvers"}]})");
  ASSERT_TRUE(decision.ok());
  std::string out = RefusalResult(common::Json::String("req-1"), *decision);
  auto parsed = common::ParseJson(out);
  ASSERT_TRUE(parsed.ok()) << out;
  EXPECT_EQ(parsed->Find("id")->as_string(), "req-1");
  const common::Json* result = parsed->Find("result");
  ASSERT_NE(result, nullptr);
  EXPECT_TRUE(result->Find("isError")->as_bool());
  EXPECT_EQ(result->Find("structuredContent"), nullptr);
  EXPECT_EQ(*result->Find("_meta")->Find("aegis/decision"), *decision);
  EXPECT_EQ(result->Find("content")->as_array()[0].Find("text")->as_string(),
            "Aegis refused this tool call: approval_needed (rule, rule big): Payments above $5,000 "
            "need two approvers. A human must approve it: approval apr_123; once approved, repeat "
            "the call with the override token. Decision 0191.");
}

TEST(JsonRpcTest, FilterToolsKeepsOfferedOnes) {
  auto message = common::ParseJson(
      R"({"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo"},{"name":"get-env"},{"x":1}],"nextCursor":"c"}})");
  ASSERT_TRUE(message.ok());
  EXPECT_EQ(FilterTools(*message, [](std::string_view n) { return n == "echo"; }), 2u);
  EXPECT_EQ(message->Canonical(),
            R"({"id":1,"jsonrpc":"2.0","result":{"nextCursor":"c","tools":[{"name":"echo"}]}})");
  auto other = common::ParseJson(R"({"jsonrpc":"2.0","id":1,"result":{"content":[]}})");
  EXPECT_EQ(FilterTools(*other, [](std::string_view) { return false; }), 0u);
}

}  // namespace
}  // namespace aegis::proxy::mcp
