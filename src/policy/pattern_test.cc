#include "policy/pattern.h"

#include "gtest/gtest.h"

namespace aegis::policy {
namespace {

TEST(PatternTest, Globs) {
  EXPECT_TRUE(GlobMatch("stripe*", "stripe-eu"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("a?c", "abc"));
  EXPECT_FALSE(GlobMatch("a?c", "ac"));
  EXPECT_TRUE(GlobMatch("*-agent", "finance-agent"));
  EXPECT_FALSE(GlobMatch("*-agent", "finance-agents"));
  // Pathological pattern stays fast (linear backtracking).
  EXPECT_FALSE(GlobMatch("*a*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
}

TEST(PatternTest, NamePatternExactIsNotGlob) {
  NamePattern exact("stripe");
  EXPECT_FALSE(exact.is_glob());
  EXPECT_TRUE(exact.Matches("stripe"));
  EXPECT_FALSE(exact.Matches("stripe2"));
}

TEST(PatternTest, HostWildcardMatchesSubdomainsOnly) {
  HostPattern h("*.example.com");
  EXPECT_TRUE(h.Matches("api.example.com"));
  EXPECT_TRUE(h.Matches("a.b.example.com"));
  EXPECT_FALSE(h.Matches("example.com"));
  EXPECT_FALSE(h.Matches("evilexample.com"));
}

TEST(PatternTest, PathPatterns) {
  PathPattern p;
  std::string error;
  ASSERT_TRUE(PathPattern::Parse("/v1/customers/{id}/charges", p, error)) << error;
  std::vector<std::pair<std::string, std::string>> caps;
  EXPECT_TRUE(p.Matches("/v1/customers/cus_1/charges", &caps));
  ASSERT_EQ(caps.size(), 1u);
  EXPECT_EQ(caps[0].second, "cus_1");
  EXPECT_FALSE(p.Matches("/v1/customers//charges"));
  EXPECT_FALSE(p.Matches("/v1/customers/cus_1/charges/x"));
  EXPECT_FALSE(p.Matches("/v1/customers/cus_1/charges/"));

  ASSERT_TRUE(PathPattern::Parse("/files/**", p, error));
  EXPECT_TRUE(p.Matches("/files/a/b/c"));
  EXPECT_TRUE(p.Matches("/files/"));
  EXPECT_FALSE(p.Matches("/file"));

  ASSERT_TRUE(PathPattern::Parse("/", p, error));
  EXPECT_TRUE(p.Matches("/"));
  EXPECT_FALSE(p.Matches("/x"));

  EXPECT_FALSE(PathPattern::Parse("v1", p, error));
  EXPECT_FALSE(PathPattern::Parse("/**/x", p, error));
  EXPECT_FALSE(PathPattern::Parse("/a{b}", p, error));
  EXPECT_FALSE(PathPattern::Parse("/{}", p, error));
}

}  // namespace
}  // namespace aegis::policy
