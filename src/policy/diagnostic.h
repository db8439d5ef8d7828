// Diagnostics: what the policy compiler found wrong, as values collected rather than thrown.
#ifndef AEGIS_POLICY_DIAGNOSTIC_H_
#define AEGIS_POLICY_DIAGNOSTIC_H_

#include <string>
#include <vector>

namespace aegis::policy {

// A position in a bundle file; line and column are 1-based. line 0 means "the whole file".
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
};

// Every diagnostic is an error: a bundle with any diagnostic does not compile.
struct Diagnostic {
  std::string code;     // stable, kebab-case: unknown-key, wrong-type, duplicate-id, ...
  std::string message;  // one sentence for a human
  Location location;

  // "file:line:col: error[code]: message".
  std::string ToString() const;
};

class Diagnostics {
 public:
  void Error(const Location& at, std::string code, std::string message);

  bool has_errors() const { return !all_.empty(); }
  int error_count() const { return static_cast<int>(all_.size()); }
  // Sorted by file, line, column, so output is stable whatever order stages ran in.
  std::vector<Diagnostic> Sorted() const;
  const std::vector<Diagnostic>& all() const { return all_; }

 private:
  std::vector<Diagnostic> all_;
};

}  // namespace aegis::policy

#endif  // AEGIS_POLICY_DIAGNOSTIC_H_
