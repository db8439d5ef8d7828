#include "expr/fast_path.h"

#include <re2/re2.h>

#include "expr/value_ops.h"

namespace aegis::expr::internal {

using common::Json;
using Result = FastPredicate::Result;

namespace {

// Which orderings satisfy a comparison, as bits: 1 = less, 2 = equal, 4 = greater.
uint8_t OrderMask(BinOp op) {
  switch (op) {
    case BinOp::kEq:
      return 2;
    case BinOp::kNe:
      return 1 | 4;
    case BinOp::kLt:
      return 1;
    case BinOp::kLe:
      return 1 | 2;
    case BinOp::kGt:
      return 4;
    default:
      return 2 | 4;
  }
}

template <typename T>
Result Compare(uint8_t mask, const T& a, const T& b) {
  // NaN compares unordered: no bit set, so every comparison but != is false, as in CEL.
  uint8_t order = a < b ? 1 : a == b ? 2 : b < a ? 4 : 0;
  if (order == 0) return mask == (1 | 4) ? Result::kTrue : Result::kFalse;
  return (mask & order) ? Result::kTrue : Result::kFalse;
}

}  // namespace

std::optional<FastPredicate> FastPredicate::Build(const Ast& ast) {
  FastPredicate p;
  p.ast_ = &ast;
  p.root_ = p.Add(ast, ast.root);
  if (p.root_ < 0) return std::nullopt;
  return p;
}

int32_t FastPredicate::Add(const Ast& ast, int32_t id) {
  const Node& n = ast.nodes[id];
  Step step{};
  switch (n.kind) {
    case NodeKind::kAnd:
    case NodeKind::kOr: {
      int32_t l = Add(ast, n.a);
      int32_t r = l < 0 ? -1 : Add(ast, n.b);
      if (r < 0) return -1;
      step.kind = n.kind == NodeKind::kAnd ? Kind::kAnd : Kind::kOr;
      step.left = l;
      step.right = r;
      break;
    }
    case NodeKind::kNot: {
      int32_t inner = Add(ast, n.a);
      if (inner < 0) return -1;
      step.kind = Kind::kNot;
      step.left = inner;
      break;
    }
    case NodeKind::kBinary: {
      if (n.op < BinOp::kEq || n.op > BinOp::kGe) return -1;
      const Node& l = ast.nodes[n.a];
      const Node& r = ast.nodes[n.b];
      if (l.kind != NodeKind::kPath || r.kind != NodeKind::kLiteral) return -1;
      Value::Kind k = r.value.kind();
      if (k != Value::Kind::kInt && k != Value::Kind::kDouble && k != Value::Kind::kString &&
          k != Value::Kind::kBool) {
        return -1;
      }
      step.kind = Kind::kCompare;
      step.mask = OrderMask(n.op);
      step.op = n.op;
      step.path = n.a;
      step.constant = &r;
      break;
    }
    case NodeKind::kInConstList: {
      if (ast.nodes[n.a].kind != NodeKind::kPath) return -1;
      const Value& list = ast.nodes[n.b].value;
      if (list.kind() != Value::Kind::kList) return -1;
      size_t size = ListSize(list);
      if (n.set == nullptr || size <= 16) {
        // Only lists of strings: anything else needs CEL's cross-type equality.
        for (size_t i = 0; i < size; ++i) {
          Value item = ListAt(list, i);
          if (item.kind() != Value::Kind::kString) return -1;
          step.strings.push_back(item.string_value());
        }
      }
      step.kind = Kind::kInSet;
      step.path = n.a;
      step.node = &n;
      break;
    }
    case NodeKind::kMatchesConst:
      if (ast.nodes[ast.Arg(n, 0)].kind != NodeKind::kPath) return -1;
      step.kind = Kind::kMatches;
      step.path = ast.Arg(n, 0);
      step.node = &n;
      break;
    case NodeKind::kCall: {
      if (n.fn != Builtin::kStartsWith && n.fn != Builtin::kEndsWith &&
          n.fn != Builtin::kContains) {
        return -1;
      }
      if (n.args_count != 2) return -1;
      const Node& subject = ast.nodes[ast.Arg(n, 0)];
      const Node& arg = ast.nodes[ast.Arg(n, 1)];
      if (subject.kind != NodeKind::kPath || arg.kind != NodeKind::kLiteral ||
          arg.value.kind() != Value::Kind::kString) {
        return -1;
      }
      step.kind = Kind::kStringFn;
      step.fn = n.fn;
      step.path = ast.Arg(n, 0);
      step.constant = &arg;
      break;
    }
    default:
      return -1;
  }
  steps_.push_back(step);
  return static_cast<int32_t>(steps_.size() - 1);
}

const Json* FastPredicate::Resolve(int32_t path_node, const Activation& activation) const {
  const Node& n = ast_->nodes[path_node];
  if (static_cast<size_t>(n.slot) >= activation.slots.size()) return nullptr;
  const Value& root = activation.slots[n.slot];
  if (root.kind() != Value::Kind::kMap || root.aux_ != kJsonBacked) return nullptr;
  const Json* j = static_cast<const Json*>(root.u_.p);
  for (int32_t k = 0; k < n.args_count && j != nullptr; ++k) {
    j = j->Find(ast_->path_names[n.args_begin + k]);
  }
  return j;
}

Result FastPredicate::RunStep(int32_t id, const Activation& activation) const {
  const Step& s = steps_[id];
  switch (s.kind) {
    case Kind::kAnd: {
      Result l = RunStep(s.left, activation);
      if (l != Result::kTrue) return l;  // false && x is false, even when x errs
      return RunStep(s.right, activation);
    }
    case Kind::kOr: {
      Result l = RunStep(s.left, activation);
      if (l != Result::kFalse) return l;  // true || x is true, even when x errs
      return RunStep(s.right, activation);
    }
    case Kind::kNot: {
      Result r = RunStep(s.left, activation);
      if (r == Result::kFallback) return r;
      return r == Result::kTrue ? Result::kFalse : Result::kTrue;
    }
    default:
      return RunLeaf(s, activation);
  }
}

Result FastPredicate::RunLeaf(const Step& s, const Activation& activation) const {
  const Json* j = Resolve(s.path, activation);
  if (j == nullptr) return Result::kFallback;
  switch (s.kind) {
    case Kind::kCompare: {
      const Value& c = s.constant->value;
      switch (c.kind()) {
        case Value::Kind::kInt:
          if (!j->is_int()) return Result::kFallback;
          return Compare(s.mask, j->as_int(), c.int_value());
        case Value::Kind::kDouble:
          if (!j->is_double()) return Result::kFallback;
          return Compare(s.mask, j->as_double(), c.double_value());
        case Value::Kind::kString:
          if (!j->is_string()) return Result::kFallback;
          return Compare(s.mask, std::string_view(j->as_string()), c.string_value());
        case Value::Kind::kBool:
          if (!j->is_bool() || (s.op != BinOp::kEq && s.op != BinOp::kNe)) {
            return Result::kFallback;
          }
          return Compare(s.mask, j->as_bool(), c.bool_value());
        default:
          return Result::kFallback;
      }
    }
    case Kind::kInSet: {
      if (!j->is_string()) return Result::kFallback;
      std::string_view str = j->as_string();
      if (s.node->set != nullptr && s.strings.empty()) {
        return s.node->set->contains(str) ? Result::kTrue : Result::kFalse;
      }
      for (std::string_view candidate : s.strings) {
        if (candidate == str) return Result::kTrue;
      }
      return Result::kFalse;
    }
    case Kind::kMatches:
      if (!j->is_string()) return Result::kFallback;
      return RE2::PartialMatch(j->as_string(), *s.node->regex) ? Result::kTrue : Result::kFalse;
    case Kind::kStringFn: {
      if (!j->is_string()) return Result::kFallback;
      std::string_view str = j->as_string(), p = s.constant->value.string_value();
      bool r = s.fn == Builtin::kStartsWith ? str.starts_with(p)
               : s.fn == Builtin::kEndsWith ? str.ends_with(p)
                                            : str.find(p) != std::string_view::npos;
      return r ? Result::kTrue : Result::kFalse;
    }
    default:
      return Result::kFallback;
  }
}


}  // namespace aegis::expr::internal
