#include "expr/types.h"

#include <cctype>
#include <utility>

namespace aegis::expr {

using common::InvalidArgumentError;
using common::StatusOr;

TypeSpec TypeSpec::List(TypeSpec elem) {
  TypeSpec t(Kind::kList);
  t.params_.push_back(std::move(elem));
  return t;
}

TypeSpec TypeSpec::Map(TypeSpec key, TypeSpec value) {
  TypeSpec t(Kind::kMap);
  t.params_.push_back(std::move(key));
  t.params_.push_back(std::move(value));
  return t;
}

TypeSpec TypeSpec::Param(size_t i) const {
  if (i < params_.size()) return params_[i];
  return Dyn();
}

std::string TypeSpec::ToString() const {
  switch (kind_) {
    case Kind::kDyn:
      return "dyn";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kUint:
      return "uint";
    case Kind::kDouble:
      return "double";
    case Kind::kString:
      return "string";
    case Kind::kBytes:
      return "bytes";
    case Kind::kNull:
      return "null_type";
    case Kind::kTimestamp:
      return "timestamp";
    case Kind::kDuration:
      return "duration";
    case Kind::kType:
      return "type";
    case Kind::kError:
      return "error";
    case Kind::kList:
      return "list(" + Param(0).ToString() + ")";
    case Kind::kMap:
      return "map(" + Param(0).ToString() + ", " + Param(1).ToString() + ")";
  }
  return "dyn";
}

namespace {

class TypeParser {
 public:
  explicit TypeParser(std::string_view text) : text_(text) {}

  bool Parse(TypeSpec* out) {
    if (!ParseType(out, 0)) return false;
    SkipSpace();
    return pos_ == text_.size();
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }
  bool Consume(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool ParseType(TypeSpec* out, int depth) {
    if (depth > 16) return false;
    SkipSpace();
    size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
      ++pos_;
    }
    std::string_view name = text_.substr(start, pos_ - start);
    static constexpr std::pair<std::string_view, TypeSpec::Kind> kSimple[] = {
        {"dyn", TypeSpec::Kind::kDyn},         {"bool", TypeSpec::Kind::kBool},
        {"int", TypeSpec::Kind::kInt},         {"uint", TypeSpec::Kind::kUint},
        {"double", TypeSpec::Kind::kDouble},   {"string", TypeSpec::Kind::kString},
        {"bytes", TypeSpec::Kind::kBytes},     {"null_type", TypeSpec::Kind::kNull},
        {"timestamp", TypeSpec::Kind::kTimestamp}, {"duration", TypeSpec::Kind::kDuration},
        {"type", TypeSpec::Kind::kType},
    };
    for (const auto& [n, k] : kSimple) {
      if (name == n) {
        *out = TypeSpec(k);
        return true;
      }
    }
    if (name == "list") {
      TypeSpec elem;
      if (!Consume('(') || !ParseType(&elem, depth + 1) || !Consume(')')) return false;
      *out = TypeSpec::List(std::move(elem));
      return true;
    }
    if (name == "map") {
      TypeSpec key, value;
      if (!Consume('(') || !ParseType(&key, depth + 1) || !Consume(',') ||
          !ParseType(&value, depth + 1) || !Consume(')')) {
        return false;
      }
      *out = TypeSpec::Map(std::move(key), std::move(value));
      return true;
    }
    return false;
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

StatusOr<TypeSpec> ParseTypeSpec(std::string_view text) {
  TypeSpec t;
  TypeParser parser(text);
  if (!parser.Parse(&t)) {
    return InvalidArgumentError("not a type: '" + std::string(text) + "'");
  }
  return t;
}

bool IsAssignable(const TypeSpec& wanted, const TypeSpec& actual) {
  if (wanted.is_dynamic() || actual.is_dynamic()) return true;
  if (wanted.kind() != actual.kind()) return false;
  if (wanted.params().empty() || actual.params().empty()) return true;
  for (size_t i = 0; i < wanted.params().size() && i < actual.params().size(); ++i) {
    if (!IsAssignable(wanted.params()[i], actual.params()[i])) return false;
  }
  return true;
}

}  // namespace aegis::expr
