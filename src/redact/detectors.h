// The detectors' patterns and validators (internal to src/redact).
//
// Each detector is one or more alternatives: an RE2 pattern that finds a candidate, and a
// validator that decides whether the candidate really is that kind of PII and where exactly it
// starts and ends. Patterns are written for RE2 in Latin-1 mode, with ASCII classes only.
// docs/redaction.md describes in words what each one accepts and refuses.
#ifndef AEGIS_REDACT_DETECTORS_H_
#define AEGIS_REDACT_DETECTORS_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "redact/redact.h"

namespace aegis::redact::internal {

// What a validator knows besides the text: the JSON key the text is the value of (for an array
// element, the array's key), and which detectors are in use. What the key says is worked out on
// first use: most values never need it.
class Context {
 public:
  Context() = default;
  explicit Context(std::string_view key) : key_(key) {}

  std::string_view key() const { return key_; }
  // The key is named like ssn, social_security_number, patientSSN.
  bool SsnKey() const;
  // The key is named like dob, birth_date, dateOfBirth, born.
  bool DobKey() const;

  unsigned enabled = 0;  // bit (1 << Detector) per detector in use

 private:
  std::string_view key_;
  mutable int8_t ssn_ = -1, dob_ = -1;  // -1: not worked out yet
};

// A candidate [begin, end) in `text`. A validator may move either end (to drop a "Bearer " prefix,
// to extend a token or a PEM header over what follows, to cut an IBAN to its country's length) and
// may change the detector (a bearer token that is a JWT). When it refuses a candidate after
// reading past its end, it sets `skip_until`: no candidate of the same alternative starting before
// that offset can succeed either (they share the part that failed), so the scan does not read the
// same bytes again for each of them.
struct Span {
  size_t begin, end;
  Detector detector;
  size_t skip_until = 0;
};

using Validator = bool (*)(std::string_view text, Span& span, const Context& ctx);

// Every pattern matches at most kMaxPatternLength bytes (validators extend findings past that).
// This bounds how far RE2 reads beyond a candidate, so refusing a candidate and searching again
// from the next byte costs at most this much: the scan stays linear on any input.
inline constexpr size_t kMaxPatternLength = 128;

struct Alternative {
  Detector detector;
  const char* pattern;
  Validator validate;
};

inline constexpr size_t kMaxAlternatives = 32;

// Every alternative, in priority order: where two match at the same position, the earlier wins.
std::span<const Alternative> Alternatives();

// Appends `value` with every letter and digit but the last four replaced by '*' (half of them kept
// when there are fewer than eight). With `keep_year` (dates of birth) only a four-digit year is
// kept, or nothing if there is none.
void AppendPartial(std::string& out, std::string_view value, bool keep_year);

// The normalised form a fingerprint is computed over (see Style::kHash).
std::string NormalizeForHash(Detector d, std::string_view value);

// A cheap necessary condition, checked in one pass before any pattern runs on a short text:
// false when no enabled detector can find anything in `text` (too few digits for any number, no
// '@' for an email, no key prefix for a secret, no birth word or key for a date of birth, ...).
// Most short JSON strings ("Smith", "enc-1001", "2024-03-01" without a birth key) stop here.
bool MayContainFinding(std::string_view text, const Context& ctx);

// Validators exposed for tests.
bool LuhnValid(std::string_view digits);
bool IbanChecksumValid(std::string_view alnum);  // country, check digits, BBAN; no spaces

}  // namespace aegis::redact::internal

#endif  // AEGIS_REDACT_DETECTORS_H_
