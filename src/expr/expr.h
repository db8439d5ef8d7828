// The condition language: a documented subset of CEL (docs/conditions.md), compiled once at
// policy load and evaluated per call.
//
// Compile() parses and type-checks a source string against an Environment of declared variables
// and returns a Program, or every error found with its byte offset in the source. A Program is
// immutable and may be evaluated from many threads at once; each thread brings its own
// EvalScratch. Evaluation does not allocate on the common path: values borrow from the Activation
// and from the Program's constants; only operations that build new strings or lists use the
// scratch arena, which is reused from call to call.
#ifndef AEGIS_EXPR_EXPR_H_
#define AEGIS_EXPR_EXPR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "expr/value.h"

namespace aegis::expr {

// A static type for type-checking. Written as CEL writes types: "bool", "int", "uint", "double",
// "string", "bytes", "null_type", "timestamp", "duration", "dyn", "list(T)", "map(K, V)".
class TypeSpec;

// The variables a condition may read, each with a static type and an Activation slot.
class Environment {
 public:
  Environment();
  ~Environment();
  Environment(Environment&&) noexcept;
  Environment& operator=(Environment&&) noexcept;

  // Declares `name` with the CEL type written in `type` (see TypeSpec). Returns the slot index
  // the Activation must fill. Declaring a name twice or an unparsable type is a programming
  // error (asserted).
  int Declare(std::string_view name, std::string_view type);

  // Slot of a declared variable, or -1.
  int SlotOf(std::string_view name) const;
  int size() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Values of the declared variables for one evaluation, indexed by slot. Values borrow: whatever
// they point to must outlive the evaluation.
struct Activation {
  std::vector<Value> slots;
};

// One error found by Compile.
struct CompileError {
  size_t offset = 0;     // byte offset into the source where the problem starts
  std::string code;      // stable code: expr-syntax, expr-type, expr-undeclared, expr-function,
                         // expr-regex, expr-limit
  std::string message;   // one sentence for a human
};

// Reusable per-thread memory for values built during evaluation (concatenated strings, list
// literals with variable elements). Reset() is called by Evaluate; keep one per thread.
class EvalScratch {
 public:
  EvalScratch();
  ~EvalScratch();
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

class Program {
 public:
  ~Program();
  // Evaluates against `activation`. The result may be an error value (Value::Kind::kError)
  // carrying a message, exactly where CEL would produce an error. The result borrows from
  // `activation`, the program and `scratch`; it stays valid until the next Evaluate with the
  // same scratch.
  Value Evaluate(const Activation& activation, EvalScratch& scratch) const;

  // The static result type inferred by the checker, in TypeSpec notation ("bool", "dyn", ...).
  std::string ResultType() const;

  struct Impl;
  explicit Program(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

struct CompileOptions {
  size_t max_source_bytes = size_t{16} * 1024;
  int max_nesting = 64;           // parenthesis/call/member nesting
  size_t max_regex_program_size = 4096;  // RE2 program size limit for `matches` patterns
  // Whether common condition shapes get the fast path (src/expr/fast_path.h). Results are the
  // same either way; tests turn it off to compare.
  bool fast_path = true;
};

struct CompileResult {
  std::unique_ptr<Program> program;  // null when errors is non-empty
  std::vector<CompileError> errors;
};

// Parses and type-checks `source`. Reports every error it can find, not just the first.
CompileResult Compile(std::string_view source, const Environment& env,
                      const CompileOptions& options = {});

}  // namespace aegis::expr

#endif  // AEGIS_EXPR_EXPR_H_
