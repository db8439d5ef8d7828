// PII redaction: finds personal data and credentials in text and in JSON values, and replaces them.
//
// A `Redactor` is built once (at policy load) from a list of detector names, a replacement style
// and, for the keyed-fingerprint style, an HMAC key. It is immutable afterwards: every method is
// const and may be called from any number of threads at once. Copies are cheap (they share the
// compiled patterns).
//
// How text is searched (docs/redaction.md has the details and the measurements): one combined RE2
// over the text, in Latin-1 mode so any bytes are accepted, finds the next place where some
// detector's pattern starts; an RE2::Set anchored there says which detectors' patterns match; each
// candidate is then validated in code (Luhn for cards, mod-97 for IBAN, SSN area/group/serial
// rules, calendar dates and nearby words for dates of birth, octet ranges for IPv4, ...). Work is
// linear in the input with a small constant; there is no backtracking.
//
// Every pattern matches ASCII only, so a replacement never splits a UTF-8 sequence: valid UTF-8 in
// gives valid UTF-8 out. Invalid bytes are tolerated and left as they are.
//
// May depend on src/common, RE2 and OpenSSL only. Knows nothing of policies or calls.
#ifndef AEGIS_REDACT_REDACT_H_
#define AEGIS_REDACT_REDACT_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace aegis::redact {

enum class Detector { kSsn, kDob, kEmail, kPhone, kCard, kIban, kIp, kSecret, kJwt };
inline constexpr int kDetectorCount = 9;

// "ssn", "dob", "email", "phone", "card", "iban", "ip", "secret", "jwt". Returns nullopt for any
// other name, including "all" (which Redactor::Create expands itself).
std::optional<Detector> ParseDetector(std::string_view name);
// The lowercase name ParseDetector accepts; also the label in replacements ("[REDACTED:ssn]").
std::string_view DetectorName(Detector d);

// How a finding is replaced:
//   kMask     "[REDACTED:ssn]" (a value found by a field path: "[REDACTED]")
//   kPartial  every letter and digit but the last four becomes '*', punctuation is kept:
//             "***-**-6789", "**** **** **** 1111". Values with fewer than eight letters and digits
//             keep only half of them; dates of birth keep just the year ("**/**/1980").
//   kHash     a keyed fingerprint, the first 12 hex digits of HMAC-SHA256(key, value):
//             "[ssn:hmac:ab12cd34ef56]" (field paths: "[hmac:ab12cd34ef56]"). The same value under
//             the same key always gives the same fingerprint, so records can still be joined.
//             Numbers found by detectors are normalised first (only letters and digits, upper
//             case; emails lower case), so "123-45-6789" and "123 45 6789" fingerprint alike.
enum class Style { kMask, kPartial, kHash };
// "mask", "partial", "hash"; nullopt otherwise.
std::optional<Style> ParseStyle(std::string_view name);
std::string_view StyleName(Style s);

// One piece of PII in a text: [begin, end) byte offsets.
struct Finding {
  Detector detector;
  size_t begin, end;
  friend bool operator==(const Finding&, const Finding&) = default;
};

class Redactor {
 public:
  // `detectors`: names as ParseDetector takes them, or "all" for every detector; an empty list
  // means none (the Redactor then only redacts field paths). Duplicates are fine. `hmac_key` is
  // required for Style::kHash and must then be at least 32 bytes; it is ignored otherwise.
  // Returns InvalidArgument naming an unknown detector or a missing/short key.
  static common::StatusOr<Redactor> Create(std::vector<std::string> detectors, Style style,
                                           std::string hmac_key);

  // The findings in `text`, in order, never overlapping. A date of birth needs a word such as
  // "dob", "date of birth", "born" or "birthdate" shortly before it on the same line; so do SSNs
  // written without dashes.
  std::vector<Finding> Scan(std::string_view text) const;

  // Replaces every finding in `text` in place; returns how many there were.
  size_t RedactText(std::string& text) const;

  struct Result {
    size_t replaced = 0;             // values replaced by field paths plus findings replaced
    std::vector<std::string> paths;  // each changed value's path, e.g. params.patient.ssn
  };

  // Redacts a parsed JSON value in place. `value` is the call's parameters: the paths in `fields`
  // start at "params" (params.patient.ssn, params.records[*].dob, params.records[0],
  // params["odd key"]; see ValidateFieldPath). For each field path:
  //   - a string is replaced whole; a number or boolean becomes the replacement string; null stays;
  //   - an object or array has every string, number and boolean inside it replaced (keys stay);
  //   - a path that does not exist in `value` is ignored.
  // Then every other string value is scanned by the detectors and its findings replaced, with
  // the enclosing key as context ({"dob": "1980-01-02"} is a date of birth without any words
  // around it; so is {"ssn": "123456789"}; array elements take their array's key). Integers of
  // nine or more digits (eight under a date-of-birth key) are scanned as their decimal text and,
  // when they hold a finding, become strings; other numbers are left alone. Object keys are never
  // changed. `paths` lists changed values in document order (keys sorted), each once, with
  // concrete indices; a field path naming an object or array is listed once. Works on decoded
  // strings, so PII split by JSON escapes ("\u0031\u0032\u0033-45-6789") is found. The walk does
  // not recurse (any depth is fine) and its work is linear in the size of the value.
  Result RedactJson(common::Json& value, const std::vector<std::string>& fields) const;

  Style style() const;
  // The detectors in use, in the order of Detector.
  std::vector<Detector> detectors() const;

 private:
  // The compiled patterns and keyed hash state (compiled.h), shared by copies.
  struct Compiled;
  explicit Redactor(std::shared_ptr<const Compiled> compiled) : c_(std::move(compiled)) {}
  std::shared_ptr<const Compiled> c_;
};

// Checks a field path as the policy loader should, when the bundle loads: "params" followed by
// steps, each `.name` (letters, digits, '_', '-', '$', '@'), `[N]` (an index), `[*]` (every element
// of an array or every member of an object) or `["any key"]` / `['any key']` (no escapes; the key
// must not contain its quote). Returns InvalidArgument with what is wrong and where.
common::Status ValidateFieldPath(std::string_view path);

}  // namespace aegis::redact

#endif  // AEGIS_REDACT_REDACT_H_
