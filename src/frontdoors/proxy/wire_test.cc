#include "frontdoors/proxy/wire.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/beast/http.hpp>
#include <string>

namespace aegis::proxy {
namespace {

namespace http = boost::beast::http;

// Parses `head` as an HTTP/1.1 message header with Beast, as a peer would.
template <bool kRequest>
http::message<kRequest, http::empty_body> Parse(const std::string& head) {
  http::parser<kRequest, http::empty_body> p;
  p.eager(false);
  boost::beast::error_code ec;
  size_t used = p.put(boost::asio::buffer(head), ec);
  EXPECT_FALSE(ec) << ec.message() << " in:\n" << head;
  EXPECT_TRUE(p.is_header_done()) << head;
  EXPECT_EQ(used, head.size()) << "bytes after the head:\n" << head;
  return p.release();
}

http::request_header<> AgentRequest() {
  http::request_header<> req;
  req.method(http::verb::post);
  req.target("/stripe/v1/charges");
  req.insert("Host", "localhost:15001");
  req.insert("Content-Type", "application/json");
  req.insert("CONNECTION", "keep-alive, X-Hop-Named");
  req.insert("x-hop-named", "secret");
  req.insert("Keep-Alive", "timeout=5");
  req.insert("TE", "trailers");
  req.insert("Upgrade", "h2c");
  req.insert("Proxy-Authorization", "Bearer agent");
  req.insert("Authorization", "Bearer agent");
  req.insert("X-Aegis-Agent", "finance");
  req.insert("x-AEGIS-token", "tok");
  req.insert("Expect", "100-continue");
  req.insert("Content-Length", "999");
  req.insert("Transfer-Encoding", "chunked");
  req.insert("X-Api-Key", "the agent's own");
  req.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  req.insert("Accept", "application/json");
  req.insert("Accept", "text/plain");
  return req;
}

TEST(WireTest, UpstreamHeadKeepsTheCallsFieldsAndAddsTheProxysOwn) {
  std::string out;
  AppendUpstreamHead(out, AgentRequest(),
                     {.target = "/v1/charges?api_key=sk%20live",
                      .host = "api.stripe.com",
                      .credential_header = "x-api-key",
                      .credential_value = "sk_live_123",
                      .traceparent = "00-11111111111111111111111111111111-2222222222222222-01",
                      .framing = Framing::Length(42)});
  auto req = Parse<true>(out);
  EXPECT_EQ(req.method(), http::verb::post);
  EXPECT_EQ(req.target(), "/v1/charges?api_key=sk%20live");
  EXPECT_EQ(req.version(), 11);
  EXPECT_EQ(req.count("host"), 1u);
  EXPECT_EQ(req["host"], "api.stripe.com");
  EXPECT_EQ(req["content-type"], "application/json");
  EXPECT_EQ(req.count("accept"), 2u);  // repeated fields pass, in order
  EXPECT_EQ(req.count("x-api-key"), 1u);
  EXPECT_EQ(req["x-api-key"], "sk_live_123");  // the agent's own value never passes
  EXPECT_EQ(req.count("traceparent"), 1u);
  EXPECT_EQ(req["traceparent"], "00-11111111111111111111111111111111-2222222222222222-01");
  EXPECT_EQ(req["content-length"], "42");
  for (const char* gone : {"connection", "x-hop-named", "keep-alive", "te", "upgrade",
                           "proxy-authorization", "authorization", "x-aegis-agent",
                           "x-aegis-token", "expect", "transfer-encoding"}) {
    EXPECT_EQ(req.count(gone), 0u) << gone << " reached the upstream:\n" << out;
  }
  EXPECT_TRUE(req.keep_alive());
}

TEST(WireTest, UpstreamHeadPassesTheAgentsTraceparentWhenTheDecisionHasNone) {
  std::string out;
  AppendUpstreamHead(out, AgentRequest(), {.target = "/", .host = "h"});
  auto req = Parse<true>(out);
  EXPECT_EQ(req["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(req["x-api-key"], "the agent's own");  // no credential configured: it is the call's
  EXPECT_EQ(req.count("content-length"), 0u);
  EXPECT_EQ(req.count("transfer-encoding"), 0u);
}

TEST(WireTest, UpstreamHeadWithChunkedFraming) {
  std::string out;
  AppendUpstreamHead(out, AgentRequest(),
                     {.target = "/upload", .host = "[2001:db8::1]:8443", .framing = Framing::Chunked()});
  auto req = Parse<true>(out);
  EXPECT_TRUE(req.chunked());
  EXPECT_EQ(req.count("content-length"), 0u);
  EXPECT_EQ(req["host"], "[2001:db8::1]:8443");
}

http::response_header<> UpstreamResponse() {
  http::response_header<> res;
  res.result(201);
  res.reason("Created Here");
  res.insert("Content-Type", "application/json");
  res.insert("Connection", "X-Up-Hop");
  res.insert("x-up-hop", "1");
  res.insert("Keep-Alive", "timeout=9");
  res.insert("Trailer", "x-checksum");
  res.insert("Transfer-Encoding", "chunked");
  res.insert("Content-Length", "5");
  res.insert("X-Aegis-Decision", "forged");
  res.insert("Set-Cookie", "a=1");
  res.insert("Set-Cookie", "b=2");
  return res;
}

TEST(WireTest, ResponseHeadDropsHopByHopAndForgedDecisionFields) {
  std::string out;
  std::array<Field, 2> extra{Field{"x-aegis-decision", "allow"},
                             Field{"x-aegis-decision-id", "dec_1"}};
  AppendResponseHead(out, UpstreamResponse(), extra, Framing::Length(7), true);
  auto res = Parse<false>(out);
  EXPECT_EQ(res.result_int(), 201);
  EXPECT_EQ(res.reason(), "Created Here");
  EXPECT_EQ(res.count("x-aegis-decision"), 1u);
  EXPECT_EQ(res["x-aegis-decision"], "allow");
  EXPECT_EQ(res["x-aegis-decision-id"], "dec_1");
  EXPECT_EQ(res.count("set-cookie"), 2u);
  EXPECT_EQ(res["content-length"], "7");
  for (const char* gone : {"connection", "x-up-hop", "keep-alive", "trailer", "transfer-encoding"}) {
    EXPECT_EQ(res.count(gone), 0u) << gone << " reached the client:\n" << out;
  }
  EXPECT_TRUE(res.keep_alive());
}

TEST(WireTest, ResponseHeadClosingChunkedAndWithoutReason) {
  http::response_header<> up;
  up.result(404);
  up.reason("");
  std::string out;
  AppendResponseHead(out, up, {}, Framing::Chunked(), false);
  auto res = Parse<false>(out);
  EXPECT_EQ(res.reason(), "Not Found");
  EXPECT_TRUE(res.chunked());
  EXPECT_FALSE(res.keep_alive());
  EXPECT_EQ(res["connection"], "close");
}

TEST(WireTest, ChunkedBodyAsAPeerDecodesIt) {
  std::string wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (std::string_view piece : std::initializer_list<std::string_view>{
           "hello ", "", "chunked world", std::string_view("x\0y", 3)}) {
    if (piece.empty()) continue;  // an empty chunk would end the body
    AppendChunkSize(wire, piece.size());
    wire += piece;
    wire += kCrlf;
  }
  wire += kLastChunk;
  http::response_parser<http::string_body> p;
  boost::beast::error_code ec;
  size_t used = p.put(boost::asio::buffer(wire), ec);
  while (!ec && !p.is_done() && used < wire.size()) {
    used += p.put(boost::asio::buffer(wire.data() + used, wire.size() - used), ec);
  }
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_TRUE(p.is_done());
  EXPECT_EQ(p.get().body(), std::string("hello chunked worldx\0y", 22));
  std::string size;
  AppendChunkSize(size, 0x1a2b);
  EXPECT_EQ(size, "1a2b\r\n");
}

}  // namespace
}  // namespace aegis::proxy
