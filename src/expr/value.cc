#include "expr/value.h"

#include "expr/value_ops.h"

namespace aegis::expr {

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
