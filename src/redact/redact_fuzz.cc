// Fuzz target for redaction: any bytes go through RedactText (every detector, each style), and,
// when they parse as JSON, through RedactJson with field paths. Checks what must always hold:
// findings are in order, disjoint and inside the text; valid UTF-8 stays valid; a redacted value
// re-serialises and parses back; masks are inert when scanned again; the shortcut for short
// texts finds what a full search finds.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json.h"
#include "redact/redact.h"

namespace {

using aegis::redact::Redactor;
using aegis::redact::Style;

const Redactor& Get(Style style) {
  static const Redactor* r[3] = {
      new Redactor(*Redactor::Create({"all"}, Style::kMask, "")),
      new Redactor(*Redactor::Create({"all"}, Style::kPartial, "")),
      new Redactor(*Redactor::Create({"all"}, Style::kHash, std::string(32, 'k'))),
  };
  return *r[static_cast<int>(style)];
}

void Fail(int line) {
  std::fprintf(stderr, "redact_fuzz.cc:%d: check failed\n", line);
  std::abort();
}
#define Check(ok) ((ok) ? (void)0 : Fail(__LINE__))

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const Style style = size > 0 ? static_cast<Style>(data[0] % 3) : Style::kMask;
  const Redactor& r = Get(style);

  auto findings = r.Scan(text);
  for (size_t i = 0; i < findings.size(); ++i) {
    Check(findings[i].begin < findings[i].end && findings[i].end <= text.size());
    if (i > 0) Check(findings[i - 1].end <= findings[i].begin);
  }
  // Short texts may skip RE2 after a cheap check; that check must never hide a finding.
  if (text.size() <= 512) {
    std::string padded(text);
    padded.append(600, ' ');
    Check(r.Scan(padded) == findings);
  }
  std::string copy(text);
  Check(r.RedactText(copy) == findings.size());
  if (aegis::common::IsValidUtf8(text)) Check(aegis::common::IsValidUtf8(copy));
  if (style == Style::kMask) {
    // Masks are inert: scanning the output again never finds anything inside one. (It may find
    // more elsewhere: a mask's label, "ssn", counts as context for a number near it.)
    std::vector<std::pair<size_t, size_t>> masks;  // where each mask landed in `copy`
    size_t shift = 0;
    for (const auto& f : findings) {
      size_t len =
          std::string("[REDACTED:]").size() + aegis::redact::DetectorName(f.detector).size();
      masks.emplace_back(f.begin + shift, f.begin + shift + len);
      shift = shift + len - (f.end - f.begin);
    }
    for (const auto& f : r.Scan(copy)) {
      for (const auto& [b, e] : masks) Check(e <= f.begin || f.end <= b);
    }
  }

  auto json = aegis::common::ParseJson(text);
  if (json.ok()) {
    aegis::common::Json value = *json;
    auto result = r.RedactJson(value, {"params.a", "params[*].b", "params.c[0]", "params"});
    auto back =
        aegis::common::ParseJson(value.Canonical(), {.max_bytes = 1 << 26, .max_depth = 64});
    Check(back.ok());
    aegis::common::Json second = *json;
    auto scanned = r.RedactJson(second, {});
    Check(scanned.paths.size() <= scanned.replaced);
    for (size_t i = 1; i < scanned.paths.size(); ++i) {
      Check(scanned.paths[i - 1] != scanned.paths[i]);
    }
    Check(result.paths.size() <= 1);  // "params" covers everything
  }
  return 0;
}
