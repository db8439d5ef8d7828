#include "expr/value.h"

#include "expr/value_ops.h"

namespace aegis::expr {

Value Value::Bool(bool b) {
  Value v;
  v.kind_ = Kind::kBool;
  v.u_.b = b;
  return v;
}

Value Value::Int(int64_t i) {
  Value v;
  v.kind_ = Kind::kInt;
  v.u_.i = i;
  return v;
}

Value Value::Uint(uint64_t u) {
  Value v;
  v.kind_ = Kind::kUint;
  v.u_.u = u;
  return v;
}

Value Value::Double(double d) {
  Value v;
  v.kind_ = Kind::kDouble;
  v.u_.d = d;
  return v;
}

Value Value::String(std::string_view s) {
  Value v;
  v.kind_ = Kind::kString;
  v.u_.s.data = s.data();
  v.u_.s.size = s.size();
  return v;
}

Value Value::Timestamp(int64_t unix_nanos) {
  Value v;
  v.kind_ = Kind::kTimestamp;
  v.u_.i = unix_nanos;
  return v;
}

Value Value::Duration(int64_t nanos) {
  Value v;
  v.kind_ = Kind::kDuration;
  v.u_.i = nanos;
  return v;
}

Value Value::Error(std::string_view message) {
  Value v;
  v.kind_ = Kind::kError;
  v.u_.s.data = message.data();
  v.u_.s.size = message.size();
  return v;
}

Value Value::FromJson(const common::Json& json) {
  using JK = common::Json::Kind;
  switch (json.kind()) {
    case JK::kNull:
      return Null();
    case JK::kBool:
      return Bool(json.as_bool());
    case JK::kInt:
      return Int(json.as_int());
    case JK::kDouble:
      return Double(json.as_double());
    case JK::kString:
      return String(json.as_string());
    case JK::kArray:
    case JK::kObject: {
      Value v;
      v.kind_ = json.kind() == JK::kArray ? Kind::kList : Kind::kMap;
      v.aux_ = internal::kJsonBacked;
      v.u_.p = &json;
      return v;
    }
  }
  return Null();
}

}  // namespace aegis::expr
