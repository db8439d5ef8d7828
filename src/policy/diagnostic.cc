#include "policy/diagnostic.h"

#include <algorithm>
#include <tuple>

#include "common/strings.h"

namespace aegis::policy {

std::string Diagnostic::ToString() const {
  const char* severity_name = severity == Severity::kError ? "error" : "warning";
  if (location.line == 0) {
    return common::StrCat(location.file, ": ", severity_name, "[", code, "]: ", message);
  }
  return common::StrCat(location.file, ":", location.line, ":", location.column, ": ",
                        severity_name, "[", code, "]: ", message);
}

void Diagnostics::Error(const Location& at, std::string code, std::string message) {
  all_.push_back({Diagnostic::Severity::kError, std::move(code), std::move(message), at});
  ++errors_;
}

void Diagnostics::Warning(const Location& at, std::string code, std::string message) {
  all_.push_back({Diagnostic::Severity::kWarning, std::move(code), std::move(message), at});
}

std::vector<Diagnostic> Diagnostics::Sorted() const {
  std::vector<Diagnostic> out = all_;
  std::stable_sort(out.begin(), out.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.location.file, a.location.line, a.location.column) <
           std::tie(b.location.file, b.location.line, b.location.column);
  });
  return out;
}

}  // namespace aegis::policy
