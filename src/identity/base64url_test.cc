#include "identity/base64url.h"

#include <gtest/gtest.h>

#include <string>

namespace aegis::identity {
namespace {

TEST(Base64UrlTest, EncodesRfc4648VectorsWithoutPadding) {
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("foob"), "Zm9vYg");
  EXPECT_EQ(Base64UrlEncode("fooba"), "Zm9vYmE");
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff\xbf"), "-_-_");  // '+' and '/' in standard base64
}

TEST(Base64UrlTest, RoundTripsEveryLengthAndByte) {
  std::string data;
  for (int i = 0; i < 300; ++i) {
    auto decoded = Base64UrlDecode(Base64UrlEncode(data));
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(*decoded, data);
    data.push_back(static_cast<char>(i * 37 + 11));
  }
}

TEST(Base64UrlTest, RefusesPaddingOtherAlphabetsAndImpossibleLengths) {
  EXPECT_EQ(Base64UrlDecode("Zg==").status().message(), "'=' padding is not allowed");
  EXPECT_EQ(Base64UrlDecode("Zm8=").status().message(), "'=' padding is not allowed");
  EXPECT_EQ(Base64UrlDecode("+/+/").status().message(),
            "character at offset 0 is not in the base64url alphabet");
  EXPECT_EQ(Base64UrlDecode("Zm9 v").status().message(),
            "character at offset 3 is not in the base64url alphabet");
  EXPECT_EQ(Base64UrlDecode(std::string("Zm\0v", 4)).status().message(),
            "character at offset 2 is not in the base64url alphabet");
  EXPECT_EQ(Base64UrlDecode("Zm9vY").status().message(),
            "length 5 is not a possible base64url length");
}

TEST(Base64UrlTest, RefusesNonCanonicalTrailingBits) {
  // "Zh" and "Zm9" have the same leading bits as "Zg" and "Zm8" but set unused bits.
  EXPECT_EQ(Base64UrlDecode("Zh").status().message(), "non-zero trailing bits");
  EXPECT_EQ(Base64UrlDecode("Zm9").status().message(), "non-zero trailing bits");
  EXPECT_TRUE(Base64UrlDecode("Zg").ok());
}

}  // namespace
}  // namespace aegis::identity
