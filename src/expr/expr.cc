#include "expr/expr.h"

#include <re2/re2.h>

#include <cassert>
#include <utility>

#include "expr/checker.h"
#include "expr/parser.h"
#include "expr/program.h"

namespace aegis::expr {

namespace internal {

// Turns each field chain on a variable (`params.patient.ssn`) into one kPath node, so the
// evaluator walks it in a loop instead of one recursive call per field. Selects under has()
// stay as they are: has() tests presence on its select's operand.
void FoldPaths(Ast& ast) {
  std::vector<bool> under_has(ast.nodes.size(), false);
  for (const Node& n : ast.nodes) {
    if (n.kind == NodeKind::kHas && n.a >= 0) under_has[n.a] = true;
  }
  for (size_t i = 0; i < ast.nodes.size(); ++i) {
    if (ast.nodes[i].kind != NodeKind::kSelect || under_has[i]) continue;
    int32_t bottom = static_cast<int32_t>(i);
    int depth = 0;
    while (ast.nodes[bottom].kind == NodeKind::kSelect) {
      bottom = ast.nodes[bottom].a;
      ++depth;
    }
    if (ast.nodes[bottom].kind != NodeKind::kSlot) continue;
    Node& n = ast.nodes[i];
    n.args_begin = static_cast<int32_t>(ast.path_names.size());
    n.args_count = depth;
    ast.path_names.resize(ast.path_names.size() + depth);
    int32_t cur = static_cast<int32_t>(i);
    for (int k = depth - 1; k >= 0; --k) {
      ast.path_names[n.args_begin + k] = ast.nodes[cur].name;
      cur = ast.nodes[cur].a;
    }
    n.slot = ast.nodes[bottom].slot;
    n.kind = NodeKind::kPath;
  }
}

}  // namespace internal

Environment::Environment() : impl_(std::make_unique<Impl>()) {}
Environment::~Environment() = default;
Environment::Environment(Environment&&) noexcept = default;
Environment& Environment::operator=(Environment&&) noexcept = default;

int Environment::Declare(std::string_view name, std::string_view type) {
  auto parsed = ParseTypeSpec(type);
  assert(parsed.ok() && "Environment::Declare: unparsable type");
  assert(impl_->slots.count(std::string(name)) == 0 && "Environment::Declare: declared twice");
  int slot = static_cast<int>(impl_->variables.size());
  impl_->variables.push_back({std::string(name), parsed.ok() ? *parsed : TypeSpec::Dyn()});
  impl_->slots.emplace(std::string(name), slot);
  return slot;
}

int Environment::SlotOf(std::string_view name) const {
  auto it = impl_->slots.find(std::string(name));
  return it == impl_->slots.end() ? -1 : it->second;
}

int Environment::size() const { return static_cast<int>(impl_->variables.size()); }

EvalScratch::EvalScratch() : impl_(std::make_unique<Impl>()) {}
EvalScratch::~EvalScratch() = default;

Program::Program(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Program::~Program() = default;

std::string Program::ResultType() const { return impl_->result_type.ToString(); }

CompileResult Compile(std::string_view source, const Environment& env,
                      const CompileOptions& options) {
  CompileResult result;
  auto impl = std::make_unique<Program::Impl>();
  impl->max_regex_program_size = options.max_regex_program_size;
  CompileError syntax_error;
  if (!internal::Parse(source, options, impl->ast, syntax_error)) {
    result.errors.push_back(std::move(syntax_error));
    return result;
  }
  internal::CheckResult checked = internal::Check(impl->ast, env.impl(), options, result.errors);
  if (!result.errors.empty()) return result;
  internal::FoldPaths(impl->ast);
  if (options.fast_path) impl->fast = internal::FastPredicate::Build(impl->ast);
  impl->result_type = checked.type;
  impl->max_iter_depth = checked.max_iter_depth;
  result.program = std::make_unique<Program>(std::move(impl));
  return result;
}

}  // namespace aegis::expr
