// Value: a CEL runtime value as the evaluator sees it. Small, trivially copyable, and borrowing:
// strings, lists and maps point at data owned elsewhere (the caller's JSON, the program's
// constants, or the evaluation scratch).
#ifndef AEGIS_EXPR_VALUE_H_
#define AEGIS_EXPR_VALUE_H_

#include <cstdint>
#include <string_view>

#include "common/json.h"

namespace aegis::expr {

class Value {
 public:
  enum class Kind : uint8_t {
    kNull,
    kBool,
    kInt,
    kUint,
    kDouble,
    kString,
    kBytes,
    kList,
    kMap,
    kTimestamp,  // nanoseconds since the Unix epoch, UTC
    kDuration,   // nanoseconds
    kType,
    kError,
  };

  Value() = default;
  static Value Null() { return Value(); }
  // Inline: the evaluator builds these on every step.
  static Value Bool(bool b) { return Make(Kind::kBool, [&](Payload& p) { p.b = b; }); }
  static Value Int(int64_t i) { return Make(Kind::kInt, [&](Payload& p) { p.i = i; }); }
  static Value Uint(uint64_t u) { return Make(Kind::kUint, [&](Payload& p) { p.u = u; }); }
  static Value Double(double d) { return Make(Kind::kDouble, [&](Payload& p) { p.d = d; }); }
  static Value String(std::string_view s) { return Text(Kind::kString, s); }  // borrows s
  static Value Timestamp(int64_t unix_nanos) {
    return Make(Kind::kTimestamp, [&](Payload& p) { p.i = unix_nanos; });
  }
  static Value Duration(int64_t nanos) {
    return Make(Kind::kDuration, [&](Payload& p) { p.i = nanos; });
  }
  // Borrows `json` and converts lazily: objects are maps with string keys, arrays are lists,
  // numbers keep their int/double distinction, strings and booleans map directly.
  static Value FromJson(const common::Json& json);
  // An error value; `message` must outlive the value (static text or scratch-owned).
  static Value Error(std::string_view message) { return Text(Kind::kError, message); }

  Kind kind() const { return kind_; }
  bool is_error() const { return kind_ == Kind::kError; }
  bool bool_value() const { return u_.b; }
  int64_t int_value() const { return u_.i; }
  uint64_t uint_value() const { return u_.u; }
  double double_value() const { return u_.d; }
  // For kString, kBytes and kError: the text.
  std::string_view string_value() const { return std::string_view(u_.s.data, u_.s.size); }

  // Implementation access for the evaluator; not part of the contract.
  union Payload {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    struct {
      const char* data;
      uint64_t size;
    } s;
    const void* p;
  };
  template <typename Fill>
  static Value Make(Kind kind, Fill fill) {
    Value v;
    v.kind_ = kind;
    fill(v.u_);
    return v;
  }
  static Value Text(Kind kind, std::string_view s) {
    Value v;
    v.kind_ = kind;
    v.u_.s.data = s.data();
    v.u_.s.size = s.size();
    return v;
  }

  Kind kind_ = Kind::kNull;
  uint8_t aux_ = 0;  // representation tag for lists and maps (JSON-backed or built)
  Payload u_{};
};

}  // namespace aegis::expr

#endif  // AEGIS_EXPR_VALUE_H_
