// Patterns used by policies: names (exact or glob), hosts (exact or *.suffix) and URL paths
// (/v1/customers/{id}/charges, /v1/files/*, /v1/**).
#ifndef AEGIS_POLICY_PATTERN_H_
#define AEGIS_POLICY_PATTERN_H_

#include <string>
#include <string_view>
#include <vector>

namespace aegis::policy {

// Whether `s` is a valid name for a tenant, agent, tool, action or rule: 1-128 characters of
// letters, digits and _ - . : /.
bool IsValidName(std::string_view s);

// An exact name, or a glob when it contains '*' (any run of characters) or '?' (one character).
class NamePattern {
 public:
  NamePattern() = default;
  explicit NamePattern(std::string text);
  bool Matches(std::string_view name) const;
  bool is_glob() const { return glob_; }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  bool glob_ = false;
};

bool GlobMatch(std::string_view pattern, std::string_view s);

// A normalised host name, or "*.example.com" for any subdomain (not the apex itself).
class HostPattern {
 public:
  HostPattern() = default;
  explicit HostPattern(std::string normalised);
  // Parses a host or "*.suffix" as written in a policy; returns false with a reason when the
  // host is not acceptable (see common::NormalizeHost) or '*' appears elsewhere.
  static bool Parse(std::string_view text, HostPattern& out, std::string& error);
  bool Matches(std::string_view normalised_host) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  bool wildcard_ = false;
};

// A URL path pattern, matched segment by segment: a literal segment, "{name}" (one segment,
// captured), "*" (one segment), or a final "**" (the rest, possibly empty).
class PathPattern {
 public:
  PathPattern() = default;
  // Returns false when `text` is not a valid pattern (must start with '/', "**" only last,
  // braces well-formed).
  static bool Parse(std::string_view text, PathPattern& out, std::string& error);
  bool empty() const { return text_.empty(); }
  const std::string& text() const { return text_; }
  // Matches a path (query string already removed). Captured {name} segments are appended to
  // `captures` as (name, value) pairs when non-null.
  bool Matches(std::string_view path,
               std::vector<std::pair<std::string, std::string>>* captures = nullptr) const;

 private:
  struct Segment {
    enum class Kind { kLiteral, kCapture, kAny, kRest } kind;
    std::string text;
  };
  std::string text_;
  std::vector<Segment> segments_;
};

}  // namespace aegis::policy

#endif  // AEGIS_POLICY_PATTERN_H_
