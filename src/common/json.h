// A JSON value and a strict parser for untrusted input (DESIGN.md section 7).
//
// The parser accepts exactly RFC 8259 and refuses what an attacker could use to make two readers
// disagree: duplicate object keys, invalid UTF-8, lone surrogates in \u escapes, nesting deeper
// than a limit, numbers out of range. Errors carry a 1-based line and column.
//
// Numbers: a literal without fraction or exponent that fits int64 is an integer; any other number
// is a double. This is the integer/double distinction the condition language relies on.
//
// Object members are kept sorted by key, so lookup is a binary search and the canonical form
// (sorted keys, no whitespace) is a plain walk.
#ifndef AEGIS_COMMON_JSON_H_
#define AEGIS_COMMON_JSON_H_

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace aegis::common {

class Json {
 public:
  enum class Kind : uint8_t { kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  struct Member;

  // Special members are defined in json.cc, where Member is complete.
  Json();
  ~Json();
  Json(const Json&);
  Json(Json&&) noexcept;
  Json& operator=(const Json&);
  Json& operator=(Json&&) noexcept;

  static Json Null();
  static Json Bool(bool b);
  static Json Int(int64_t i);
  static Json Double(double d);
  static Json String(std::string s);
  static Json Array(std::vector<Json> items = {});
  // Builds an object; returns an error naming the key if `members` holds a key twice.
  static StatusOr<Json> Object(std::vector<Member> members);
  static Json EmptyObject();

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_double() const { return kind_ == Kind::kDouble; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kDouble; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }

  // Accessors; calling one for another kind is a programming error (asserted in debug builds).
  // Inline: policy conditions call them on every evaluation.
  bool as_bool() const {
    assert(kind_ == Kind::kBool);
    return bool_;
  }
  int64_t as_int() const {
    assert(kind_ == Kind::kInt);
    return int_;
  }
  double as_double() const {  // also converts an integer
    assert(is_number());
    return kind_ == Kind::kInt ? static_cast<double>(int_) : double_;
  }
  const std::string& as_string() const {
    assert(kind_ == Kind::kString);
    return string_;
  }
  const std::vector<Json>& as_array() const {
    assert(kind_ == Kind::kArray);
    return array_;
  }
  std::vector<Json>& mutable_array() {
    assert(kind_ == Kind::kArray);
    return array_;
  }
  const std::vector<Member>& as_object() const;
  // Members may be changed in place but keys must stay as they are (sorted, distinct).
  std::vector<Member>& mutable_object();

  // Returns the member's value, or nullptr when this is not an object or has no such key.
  const Json* Find(std::string_view key) const;
  // Sets (inserting or replacing) a member of an object.
  void Set(std::string key, Json value);

  // Canonical serialisation: sorted keys, no insignificant whitespace, shortest round-trip
  // doubles, strings escaped minimally (control characters as \u00XX). Equal values give equal
  // bytes, so its SHA-256 is a content digest.
  std::string Canonical() const;
  void AppendCanonical(std::string& out) const;

  friend bool operator==(const Json& a, const Json& b);

 private:
  // Members already sorted by key and distinct, as the parser has checked.
  static Json SortedObject(std::vector<Member> members);
  friend class JsonParser;

  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  int64_t int_ = 0;
  double double_ = 0;
  std::string string_;
  std::vector<Json> array_;
  std::vector<Member> object_;
};

struct Json::Member {
  std::string key;
  Json value;
};

class JsonParser;

struct JsonLimits {
  size_t max_bytes = 1 << 20;  // 1 MiB
  int max_depth = 64;
};

// Parses `text` as one JSON document (surrounding whitespace allowed). Returns
// InvalidArgument with "line L, column C: what" on any violation, or ResourceExhausted when a
// limit is exceeded. Never crashes and never recurses deeper than `limits.max_depth`.
StatusOr<Json> ParseJson(std::string_view text, const JsonLimits& limits = {});

// Returns true if `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Appends `s` as a JSON string literal (quotes included).
void AppendJsonString(std::string& out, std::string_view s);

// Formats a double the way Canonical() does: shortest text that reads back to the same value;
// integral values keep a ".0" so they stay doubles when read back.
std::string FormatDouble(double d);

}  // namespace aegis::common

#endif  // AEGIS_COMMON_JSON_H_
