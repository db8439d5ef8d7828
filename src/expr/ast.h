// The flat syntax tree: one vector of nodes that refer to their children by index. The parser
// builds it, the checker resolves names and functions in place, and the evaluator walks it.
#ifndef AEGIS_EXPR_AST_H_
#define AEGIS_EXPR_AST_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "expr/value.h"

namespace re2 {
class RE2;
}

namespace aegis::expr::internal {

enum class NodeKind : uint8_t {
  // Produced by the parser.
  kLiteral,        // value
  kIdent,          // name
  kSelect,         // a.name
  kIndex,          // a[b]
  kCall,           // name(args...) or args[0].name(args[1...]) when member_call
  kList,           // [args...]
  kMap,            // {args[0]: args[1], ...}
  kNot,            // !a
  kNeg,            // -a
  kBinary,         // a op b (arithmetic, comparison, in)
  kAnd,            // a && b
  kOr,             // a || b
  kTernary,        // a ? b : c
  kHas,            // has(a) where a is a kSelect
  kComprehension,  // a.macro(name, b)
  // Produced by the checker.
  kSlot,          // a declared variable: slot
  kIterVar,       // a comprehension variable: slot is its depth
  kInConstList,   // a in <constant list at b>, with `set` for string lookups
  kMatchesConst,  // a.matches(<constant pattern>) with `regex`
  // Produced after checking.
  kPath,  // slot.f1.f2...: field names at Ast::path_names[args_begin, +args_count)
};

enum class BinOp : uint8_t { kAdd, kSub, kMul, kDiv, kMod, kEq, kNe, kLt, kLe, kGt, kGe, kIn };

enum class Macro : uint8_t { kNone, kExists, kAll, kExistsOne, kMap, kFilter };

// Functions after resolution by name and receiver style.
enum class Builtin : uint8_t {
  kUnknown,
  kSize,
  kStartsWith,
  kEndsWith,
  kContains,
  kMatches,
  kInt,
  kUint,
  kDouble,
  kString,
  kBool,
  kBytes,
  kType,
  kDyn,
  kTimestamp,
  kDuration,
  kGetFullYear,
  kGetMonth,
  kGetDate,
  kGetDayOfMonth,
  kGetDayOfWeek,
  kGetDayOfYear,
  kGetHours,
  kGetMinutes,
  kGetSeconds,
  kGetMilliseconds,
};

struct Node {
  NodeKind kind = NodeKind::kLiteral;
  BinOp op = BinOp::kAdd;
  Macro macro = Macro::kNone;
  Builtin fn = Builtin::kUnknown;
  bool member_call = false;
  uint16_t height = 1;  // longest path to a leaf, for the nesting limit
  uint32_t offset = 0;  // byte offset in the source
  int32_t a = -1, b = -1, c = -1;
  int32_t args_begin = 0, args_count = 0;  // into Ast::args
  int32_t slot = -1;
  std::string_view name;  // identifier, field, function or iteration variable
  Value value;            // literal or folded constant
  const re2::RE2* regex = nullptr;
  const std::unordered_set<std::string_view>* set = nullptr;
};

struct Ast {
  std::vector<Node> nodes;
  std::vector<int32_t> args;
  std::vector<std::string_view> path_names;  // for kPath nodes
  int32_t root = -1;
  // Storage that node values borrow from; deques keep addresses stable as they grow.
  std::deque<std::string> strings;
  std::deque<std::vector<Value>> value_lists;
  std::vector<std::unique_ptr<re2::RE2>> regexes;
  std::vector<std::unique_ptr<std::unordered_set<std::string_view>>> sets;

  int32_t Arg(const Node& n, int i) const { return args[n.args_begin + i]; }
  std::string_view Intern(std::string s) { return strings.emplace_back(std::move(s)); }
};

}  // namespace aegis::expr::internal

#endif  // AEGIS_EXPR_AST_H_
