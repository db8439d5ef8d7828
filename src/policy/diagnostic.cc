#include "policy/diagnostic.h"

#include <algorithm>
#include <tuple>

#include "common/strings.h"

namespace aegis::policy {

std::string Diagnostic::ToString() const {
  if (location.line == 0) return common::StrCat(location.file, ": error[", code, "]: ", message);
  return common::StrCat(location.file, ":", location.line, ":", location.column, ": error[", code,
                        "]: ", message);
}

void Diagnostics::Error(const Location& at, std::string code, std::string message) {
  all_.push_back({std::move(code), std::move(message), at});
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
