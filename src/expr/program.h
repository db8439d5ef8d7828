// The insides of Program and EvalScratch, shared by expr.cc (compilation) and eval.cc
// (evaluation). Not part of the public API.
#ifndef AEGIS_EXPR_PROGRAM_H_
#define AEGIS_EXPR_PROGRAM_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include <optional>

#include "expr/ast.h"
#include "expr/fast_path.h"
#include "expr/expr.h"
#include "expr/types.h"

namespace aegis::expr {

struct Program::Impl {
  internal::Ast ast;
  std::optional<internal::FastPredicate> fast;  // shortcut for common shapes, when it applies
  TypeSpec result_type;
  int max_iter_depth = 0;
  size_t max_regex_program_size = 4096;
};

// Pools that keep their capacity across evaluations, so a warmed-up scratch does not allocate.
// Deques keep element addresses stable as they grow, so values may borrow from them.
struct EvalScratch::Impl {
  std::deque<std::string> strings;
  size_t strings_used = 0;
  std::deque<std::vector<Value>> lists;
  size_t lists_used = 0;
  std::vector<Value> iter_vars;
  // Work left in this evaluation. Comprehensions charge their element count each time they run
  // and built strings and lists charge their size, so nested macros over attacker-sized lists
  // end with an error (which fails safe) instead of running for minutes.
  static constexpr uint64_t kMaxWork = 1'000'000;
  uint64_t work_left = kMaxWork;

  bool Charge(uint64_t units) {
    if (units > work_left) {
      work_left = 0;
      return false;
    }
    work_left -= units;
    return true;
  }

  std::string& NewString() {
    if (strings_used == strings.size()) strings.emplace_back();
    std::string& s = strings[strings_used++];
    s.clear();
    return s;
  }
  std::vector<Value>& NewList() {
    if (lists_used == lists.size()) lists.emplace_back();
    std::vector<Value>& l = lists[lists_used++];
    l.clear();
    return l;
  }
  void Reset() {
    strings_used = 0;
    lists_used = 0;
    work_left = kMaxWork;
  }
};

}  // namespace aegis::expr

#endif  // AEGIS_EXPR_PROGRAM_H_
