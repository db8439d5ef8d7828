// FastPredicate: a compiled shortcut for the condition shapes policies use most — a field of a
// variable compared with a constant, `in` a constant list, startsWith/endsWith/contains with a
// constant, `matches` with a constant pattern, and &&, || and ! of those.
//
// It reads the caller's JSON directly, without the general evaluator's values and recursion,
// and answers true or false only when the answer is certain under CEL's rules (operands of the
// same type, fields present). Anything else — a missing field, mixed types, a value that is
// not JSON-backed — answers kFallback, and the program is evaluated in full, so results and
// errors are exactly those of the general evaluator.
#ifndef AEGIS_EXPR_FAST_PATH_H_
#define AEGIS_EXPR_FAST_PATH_H_

#include <memory>
#include <optional>
#include <vector>

#include "expr/ast.h"
#include "expr/expr.h"

namespace aegis::expr::internal {

class FastPredicate {
 public:
  enum class Result { kFalse, kTrue, kFallback };

  // Builds the shortcut for `ast`'s root, or returns nullopt when its shape is not covered.
  // The predicate borrows from `ast`, which must outlive it.
  static std::optional<FastPredicate> Build(const Ast& ast);

  Result Run(const Activation& activation) const {
    const Step& root = steps_[root_];
    return root.kind >= Kind::kAnd ? RunStep(root_, activation) : RunLeaf(root, activation);
  }

 private:
  // Leaves first, then the connectives (Run relies on the order).
  enum class Kind : uint8_t { kCompare, kInSet, kStringFn, kMatches, kAnd, kOr, kNot };
  struct Step {
    Kind kind;
    BinOp op = BinOp::kEq;          // kCompare
    uint8_t mask = 0;                // kCompare: orderings that satisfy op (1 <, 2 =, 4 >)
    Builtin fn = Builtin::kUnknown;  // kStringFn
    int32_t path = -1;               // kPath node of the operand
    const Node* constant = nullptr;  // kCompare, kStringFn: the literal node
    const Node* node = nullptr;      // kInSet, kMatches: the node with the set / regex
    int32_t left = -1, right = -1;   // kAnd, kOr, kNot: indices into steps_
    std::vector<std::string_view> strings;  // kInSet over a short list: scanned, not hashed
  };

  int32_t Add(const Ast& ast, int32_t node);  // -1 when not covered
  Result RunStep(int32_t step, const Activation& activation) const;
  Result RunLeaf(const Step& step, const Activation& activation) const;
  const common::Json* Resolve(int32_t path_node, const Activation& activation) const;

  const Ast* ast_ = nullptr;
  std::vector<Step> steps_;
  int32_t root_ = -1;
};

}  // namespace aegis::expr::internal

#endif  // AEGIS_EXPR_FAST_PATH_H_
