#include "common/host.h"

#include <string>
#include <string_view>

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
  for (const char* bad : {"",
                          "user@api.stripe.com",
                          "api.stripe.com\\@evil.com",
                          "api%2estripe.com",
                          "b\xc3\xbc"
                          "cher.de",
                          "a..b",
                          ".",
                          "0x7f.1",
                          "2130706433",
                          "0177.0.0.1",
                          "127.1",
                          "::1",
                          "[::1",
                          "host:0",
                          "host:99999",
                          "host:",
                          "host:12ab",
                          "a/b",
                          "a b",
                          "*.example.com",
                          "a*b.com"}) {
    EXPECT_FALSE(NormalizeHost(bad).ok()) << bad;
  }
}

TEST(HostTest, NulInsideHostIsRefused) {
  std::string with_nul("api.stripe.com\0.evil.com", 24);
  EXPECT_FALSE(NormalizeHost(with_nul).ok());
}

TEST(HostTest, NumericHostsAreCanonicalDottedQuadsOrRefused) {
  EXPECT_EQ(*NormalizeHost("127.0.0.1."), "127.0.0.1");
  EXPECT_EQ(*NormalizeHost("123.example"), "123.example");  // only the last label decides
  EXPECT_EQ(*NormalizeHost("0xcafe.example"), "0xcafe.example");
  for (const char* bad : {"0x", "0x.0x.0x.0x", "foo.123", "foo.0x1f", "1.2.3.4.5", "127.0.0.01",
                          "256.0.0.1", "0x7f000001", "017700000001", "127.0.1"}) {
    auto h = NormalizeHost(bad);
    ASSERT_FALSE(h.ok()) << bad;
    EXPECT_NE(h.status().message().find("ends in a number"), std::string::npos) << bad;
  }
}

TEST(HostTest, Ipv6IsCanonicalised) {
  struct {
    const char* in;
    const char* want;
  } cases[] = {
      {"[2001:DB8:0:0:0:0:0:1]", "[2001:db8::1]"},
      {"[0:0:0:0:0:0:0:1]", "[::1]"},
      {"[0000:0000::0001]", "[::1]"},
      {"[::]", "[::]"},
      {"[1::]", "[1::]"},
      {"[2001:db8:0:1:0:0:0:1]", "[2001:db8:0:1::1]"},
      {"[1:0:0:2:0:0:0:3]", "[1:0:0:2::3]"},
      {"[1:0:0:1:0:0:1:1]", "[1::1:0:0:1:1]"},     // a tie: the first run
      {"[1:0:1:1:1:1:1:1]", "[1:0:1:1:1:1:1:1]"},  // a single zero group stays
      {"[2001:db8::192.0.2.1]", "[2001:db8::c000:201]"},
      {"[FE80::1]:443", "[fe80::1]"},
  };
  for (const auto& c : cases) {
    auto h = NormalizeHost(c.in);
    ASSERT_TRUE(h.ok()) << c.in << ": " << h.status();
    EXPECT_EQ(*h, c.want) << c.in;
    EXPECT_EQ(*NormalizeHost(*h), *h) << "not idempotent: " << c.in;
  }
}

TEST(HostTest, RefusesInvalidIpv6AndIpv6ThatEmbedsIpv4) {
  for (const char* bad :
       {"[1::2::3]", "[:::]", "[1:2:3:4:5:6:7:8:9]", "[1:2:3:4:5:6:7]", "[12345::]", "[::g]",
        "[1:2:3:4:5:6:7::8]", "[::1.2.3]", "[::01.2.3.4]", "[1.2.3.4::]", "[:1::2]", "[1::2:]",
        "[]", "[::1]x", "[::1]:", "[::1]:0", "[fe80::1%25eth0]", "[fe80::1%eth0]"}) {
    EXPECT_FALSE(NormalizeHost(bad).ok()) << bad;
  }
  for (const char* embeds :
       {"[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::FFFF:7F00:1]", "[0:0:0:0:0:ffff:7f00:1]",
        "[::ffff:a9fe:a9fe]", "[::127.0.0.1]", "[::ffff:0:7f00:1]", "[64:ff9b::7f00:1]",
        "[64:ff9b::10.0.0.1]", "[64:ff9b:1::1]"}) {
    auto h = NormalizeHost(embeds);
    ASSERT_FALSE(h.ok()) << embeds;
    EXPECT_NE(h.status().message().find("embeds an IPv4"), std::string::npos) << embeds;
  }
}

TEST(HostTest, ErrorsQuoteOnlyAShortExcerpt) {
  auto h = NormalizeHost("host:" + std::string(1000, '9'));
  ASSERT_FALSE(h.ok());
  EXPECT_LT(h.status().message().size(), 40u) << h.status();
  h = NormalizeHost("good.com:80:80");
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find("more than one ':'"), std::string::npos);
}

TEST(PunycodeTest, DecodesRfc3492Samples) {
  auto d = DecodePunycode("ihqwcrb4cv8a8dqg056pqjye");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, U"他们为什么不说中文");
  d = DecodePunycode("3b-ww4c5e180e575azdo039a");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, U"3年b组金八先生");
  d = DecodePunycode("bcher-kva");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, U"bücher");
  d = DecodePunycode("80ak6aa92e");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, U"аррӏе");
}

TEST(PunycodeTest, RefusesInvalidAndNonCanonicalInput) {
  for (std::string_view bad :
       {"", "-", "BCHER-KVA", "b_cher-kva", "bcher-kv!", "99999999999", "zzzzzzzzzzzzzzzzz",
        "x-qc4g",          // decodes to a surrogate, U+D800
        "-80ak6aa92e"}) {  // the same code points as "80ak6aa92e", spelled another way
    EXPECT_FALSE(DecodePunycode(bad).ok()) << bad;
  }
  EXPECT_FALSE(DecodePunycode(std::string(60, 'a')).ok());  // longer than a label allows
}

TEST(HostTest, AcceptsOrdinaryIdnaLabels) {
  struct {
    const char* in;
    const char* want;
  } cases[] = {
      {"xn--bcher-kva.example", "xn--bcher-kva.example"},  // bücher
      {"XN--BCHER-KVA.Example.", "xn--bcher-kva.example"},
      {"xn--caf-dma.fr", "xn--caf-dma.fr"},                  // café
      {"xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai"},    // пример.рф
      {"xn--d1acpjx3f.xn--p1ai", "xn--d1acpjx3f.xn--p1ai"},  // яндекс.рф
      {"xn--hxargifdar.gr", "xn--hxargifdar.gr"},            // ελληνικά
      {"xn--mxacd.gr", "xn--mxacd.gr"},                      // αβγ
      {"xn--r8jz45g.jp", "xn--r8jz45g.jp"},                  // 例え
  };
  for (const auto& c : cases) {
    auto h = NormalizeHost(c.in);
    ASSERT_TRUE(h.ok()) << c.in << ": " << h.status();
    EXPECT_EQ(*h, c.want);
  }
}

TEST(HostTest, RefusesIdnaLookAlikes) {
  struct {
    const char* host;
    const char* reason;
  } cases[] = {
      {"xn--pypal-4ve.com", "mixing"},                // pаypal, Cyrillic а
      {"xn--pple-43d.com", "mixing"},                 // аpple
      {"xn--a-8sb.com", "mixing"},                    // aа
      {"xn--mxa8w.com", "mixing"},                    // Greek α, Cyrillic а
      {"api.xn--80ak6aa92e.com", "look like Latin"},  // аррӏе, all Cyrillic
      {"xn--e1argc3h.com", "look like Latin"},        // ѕсоре
      {"xn--mxa1ag.com", "look like Latin"},          // Greek ορα
      {"xn--abc-.com", "plain ASCII"},                // "abc" in disguise
      {"xn--paypal-df0c.com", "invisible"},           // pay<ZERO WIDTH SPACE>pal
      {"xn--example-mka.com", "invisible"},           // ex<SOFT HYPHEN>ample
      {"xn--mi7ca7anb7c.com", "invisible"},           // fullwidth ｐａｙｐａｌ
      {"xn--examplecom-th3i", "invisible"},           // example<IDEOGRAPHIC FULL STOP>com
      {"xn--ey-0qu.com", "invisible"},                // <KELVIN SIGN>ey
      {"xn--.com", "not valid Punycode"},
      {"xn--zz_z.com", "not valid Punycode"},
      {"xn---80ak6aa92e.com", "not valid Punycode"},
  };
  for (const auto& c : cases) {
    auto h = NormalizeHost(c.host);
    ASSERT_FALSE(h.ok()) << c.host;
    EXPECT_NE(h.status().message().find(c.reason), std::string::npos)
        << c.host << ": " << h.status();
  }
}

}  // namespace
}  // namespace aegis::common
