// TypeSpec: the static types of the condition language, as the checker sees them, and the parser
// for their CEL spelling ("int", "list(string)", "map(string, dyn)").
#ifndef AEGIS_EXPR_TYPES_H_
#define AEGIS_EXPR_TYPES_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace aegis::expr {

class TypeSpec {
 public:
  enum class Kind : uint8_t {
    kDyn,
    kBool,
    kInt,
    kUint,
    kDouble,
    kString,
    kBytes,
    kNull,
    kTimestamp,
    kDuration,
    kList,  // params: element type (may be empty: any list, used by the overload table)
    kMap,   // params: key and value types (may be empty: any map)
    kType,
    kError,  // a subexpression that already failed to check; matches anything
  };

  TypeSpec() = default;
  explicit TypeSpec(Kind kind) : kind_(kind) {}
  static TypeSpec Dyn() { return TypeSpec(Kind::kDyn); }
  static TypeSpec List(TypeSpec elem);
  static TypeSpec Map(TypeSpec key, TypeSpec value);

  Kind kind() const { return kind_; }
  const std::vector<TypeSpec>& params() const { return params_; }
  bool is(Kind k) const { return kind_ == k; }
  // Dyn or error: anything may turn up at run time.
  bool is_dynamic() const { return kind_ == Kind::kDyn || kind_ == Kind::kError; }
  bool is_numeric() const {
    return kind_ == Kind::kInt || kind_ == Kind::kUint || kind_ == Kind::kDouble;
  }
  // Element type of a list, or key/value of a map; dyn when unknown.
  TypeSpec Param(size_t i) const;

  // CEL notation, e.g. "map(string, dyn)".
  std::string ToString() const;

  friend bool operator==(const TypeSpec& a, const TypeSpec& b) {
    return a.kind_ == b.kind_ && a.params_ == b.params_;
  }

 private:
  Kind kind_ = Kind::kDyn;
  std::vector<TypeSpec> params_;
};

// Parses CEL type notation. Returns InvalidArgument for anything else.
common::StatusOr<TypeSpec> ParseTypeSpec(std::string_view text);

// True when a value of static type `actual` may be passed where `wanted` is expected: equal
// types, or either side dynamic (checked at run time instead).
bool IsAssignable(const TypeSpec& wanted, const TypeSpec& actual);

}  // namespace aegis::expr

#endif  // AEGIS_EXPR_TYPES_H_
