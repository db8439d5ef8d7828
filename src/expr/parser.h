// Lexer and parser: CEL source text to the flat syntax tree (ast.h), with byte offsets. Stops at
// the first syntax error. Recursion is bounded by the nesting limit, so hostile input cannot
// exhaust the stack.
#ifndef AEGIS_EXPR_PARSER_H_
#define AEGIS_EXPR_PARSER_H_

#include <string_view>

#include "expr/ast.h"
#include "expr/expr.h"

namespace aegis::expr::internal {

// Parses `source` into `ast` (which must be empty). Returns false and fills `error` on failure.
bool Parse(std::string_view source, const CompileOptions& options, Ast& ast, CompileError& error);

}  // namespace aegis::expr::internal

#endif  // AEGIS_EXPR_PARSER_H_
