#include "policy/document.h"

#include "gtest/gtest.h"

namespace aegis::policy {
namespace {

std::string FirstError(std::string_view text, const DocumentLimits& limits = {}) {
  Diagnostics diags;
  DocNode root;
  ParseDocument("f.yaml", text, limits, root, diags);
  return diags.all().empty() ? "" : diags.all()[0].ToString();
}

TEST(DocumentTest, KeepsLocations) {
  Diagnostics diags;
  DocNode root;
  ASSERT_TRUE(ParseDocument("f.yaml", "a: 1\nb:\n  c: x\n", {}, root, diags));
  ASSERT_TRUE(root.is_map());
  const DocNode& c_value = root.members[1].value.members[0].value;
  EXPECT_EQ(c_value.location.line, 3);
  EXPECT_EQ(c_value.location.column, 6);
}

TEST(DocumentTest, ReportsSyntaxErrorsWithLocation) {
  EXPECT_EQ(FirstError("a: [1, 2\nb: 3\n").rfind("f.yaml:", 0), 0u);
  EXPECT_NE(FirstError("a: [1, 2\nb: 3\n").find("error[yaml-syntax]"), std::string::npos);
}

TEST(DocumentTest, RefusesDuplicateKeys) {
  EXPECT_EQ(FirstError("a: 1\na: 2\n"),
            "f.yaml:2:1: error[duplicate-key]: key \"a\" appears more than once in this map");
}

TEST(DocumentTest, RefusesDeepNestingAndAliasBombs) {
  std::string deep(5000, '[');
  EXPECT_NE(FirstError(deep).find("too-deep"), std::string::npos);
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'j'; ++c, ++prev) {
    bomb += std::string(1, c) + ": &" + c + " [*" + prev + ", *" + prev + ", *" + prev + ", *" +
            prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev +
            ", *" + prev + "]\n";
  }
  EXPECT_NE(FirstError(bomb).find("too-large"), std::string::npos);
}

TEST(DocumentTest, RefusesOversizeAndInvalidUtf8) {
  EXPECT_NE(FirstError("a: 1\n", {.max_file_bytes = 3}).find("too-large"), std::string::npos);
  EXPECT_NE(FirstError("a: \xff\n").find("invalid-utf8"), std::string::npos);
}

TEST(DocumentTest, RefusesControlCharacters) {
  EXPECT_EQ(FirstError(std::string("a: 1\nb: x\0y\n", 12)),
            "f.yaml:2:5: error[invalid-character]: control character U+0000 is not allowed in a "
            "policy file");
  EXPECT_NE(FirstError("a: \x01\n").find("U+0001"), std::string::npos);
}

TEST(DocumentTest, CoreSchemaTyping) {
  Diagnostics diags;
  DocNode root;
  ASSERT_TRUE(ParseDocument("f.yaml",
                            "{i: 7000, d: 1.5, s: yes, q: \"12\", n: ~, b: true, h: 0x10, "
                            "neg: -3, big: 99999999999999999999}",
                            {}, root, diags));
  common::Json j;
  ASSERT_TRUE(ToJson(root, j, diags));
  EXPECT_TRUE(j.Find("i")->is_int());
  EXPECT_TRUE(j.Find("d")->is_double());
  EXPECT_EQ(j.Find("s")->as_string(), "yes");  // YAML 1.2: not a boolean
  EXPECT_EQ(j.Find("q")->as_string(), "12");
  EXPECT_TRUE(j.Find("n")->is_null());
  EXPECT_TRUE(j.Find("b")->as_bool());
  EXPECT_EQ(j.Find("h")->as_int(), 16);
  EXPECT_EQ(j.Find("neg")->as_int(), -3);
  EXPECT_TRUE(j.Find("big")->is_double());
}

}  // namespace
}  // namespace aegis::policy
