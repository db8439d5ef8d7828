// The checker: resolves identifiers and functions in the parsed tree, infers static types, and
// reports what is wrong before anything runs (undeclared names, unknown functions, wrong arity,
// operand types no overload accepts, invalid regular expressions). It also precomputes what the
// evaluator would otherwise redo per call: constant list and map literals, hash sets for `in`
// over constant lists of strings, and compiled regular expressions for constant patterns.
#ifndef AEGIS_EXPR_CHECKER_H_
#define AEGIS_EXPR_CHECKER_H_

#include <string>
#include <unordered_map>
#include <vector>

#include "expr/ast.h"
#include "expr/expr.h"
#include "expr/types.h"

namespace aegis::expr {

struct Environment::Impl {
  struct Variable {
    std::string name;
    TypeSpec type;
  };
  std::vector<Variable> variables;  // indexed by slot
  std::unordered_map<std::string, int> slots;
};

namespace internal {

struct CheckResult {
  TypeSpec type;
  int max_iter_depth = 0;  // deepest nesting of comprehensions
};

// Checks and rewrites `ast` in place. Appends every problem to `errors`.
CheckResult Check(Ast& ast, const Environment::Impl& env, const CompileOptions& options,
                  std::vector<CompileError>& errors);

}  // namespace internal
}  // namespace aegis::expr

#endif  // AEGIS_EXPR_CHECKER_H_
