#include "common/host.h"

#include "gtest/gtest.h"

namespace aegis::common {
namespace {

TEST(HostTest, NormalisesCaseTrailingDotAndPort) {
  int port = 0;
  auto h = NormalizeHost("API.Stripe.COM.:443", &port);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(*h, "api.stripe.com");
  EXPECT_EQ(port, 443);
  EXPECT_EQ(*NormalizeHost("10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(*NormalizeHost("[::1]:8080", &port), "[::1]");
  EXPECT_EQ(port, 8080);
}

TEST(HostTest, RefusesAmbiguousHosts) {
  for (const char* bad :
       {"", "user@api.stripe.com", "api.stripe.com\\@evil.com", "api%2estripe.com",
        "b\xc3\xbc" "cher.de", "a..b", ".",
        "0x7f.1", "2130706433", "0177.0.0.1", "127.1", "::1", "[::1", "host:0", "host:99999",
        "host:", "host:12ab", "a/b", "a b", "*.example.com", "a*b.com"}) {
    EXPECT_FALSE(NormalizeHost(bad).ok()) << bad;
  }
}

TEST(HostTest, NulInsideHostIsRefused) {
  std::string with_nul("api.stripe.com\0.evil.com", 24);
  EXPECT_FALSE(NormalizeHost(with_nul).ok());
}

}  // namespace
}  // namespace aegis::common
