#include "redact/detectors.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstring>

namespace aegis::redact::internal {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsAlpha(char c) { return IsUpper(c) || IsLower(c); }
bool IsAlnum(char c) { return IsDigit(c) || IsAlpha(c); }
bool IsWord(char c) { return IsAlnum(c) || c == '_'; }
char Lower(char c) { return IsUpper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

char At(std::string_view text, size_t i) { return i < text.size() ? text[i] : '\0'; }
char Before(std::string_view text, size_t i) { return i > 0 ? text[i - 1] : '\0'; }

bool Enabled(const Context& ctx, Detector d) {
  return (ctx.enabled & (1u << static_cast<unsigned>(d))) != 0;
}

// Parses up to `n` digits at text[i...]; returns the value or -1 if fewer than `n`.
int Digits(std::string_view s, size_t i, size_t n) {
  if (i + n > s.size()) return -1;
  int v = 0;
  for (size_t k = 0; k < n; ++k) {
    if (!IsDigit(s[i + k])) return -1;
    v = v * 10 + (s[i + k] - '0');
  }
  return v;
}

// ---- Context words ---------------------------------------------------------------------------

// Splits `s` into lower-case words at anything but letters and at lower-to-upper changes
// ("dateOfBirth" -> date, of, birth), and calls `fn(word)` for each until it returns true.
template <typename Fn>
bool AnyWord(std::string_view s, Fn fn) {
  char buf[32];
  size_t n = 0;
  bool overflow = false;
  auto flush = [&]() {
    bool hit = n > 0 && !overflow && fn(std::string_view(buf, n));
    n = 0;
    overflow = false;
    return hit;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (!IsAlpha(c)) {
      if (flush()) return true;
      continue;
    }
    if (IsUpper(c) && i > 0 && IsLower(s[i - 1]) && flush()) return true;
    if (n < sizeof(buf)) {
      buf[n++] = Lower(c);
    } else {
      overflow = true;
    }
  }
  return flush();
}

bool IsDobWord(std::string_view w) {
  return w == "dob" || w == "born" || w == "birthdate" || w.find("birth") != std::string_view::npos;
}

// Scans the words of `s` for date-of-birth or SSN context. "date of birth" and "birthdate" both
// contain the word-piece "birth"; "social security" is two words.
bool HasDobWords(std::string_view s) {
  // Every word looked for has a 'b'.
  if (s.find('b') == std::string_view::npos && s.find('B') == std::string_view::npos) return false;
  if (AnyWord(s, IsDobWord)) return true;
  // "D.O.B." splits into single letters.
  for (size_t i = 0; i + 5 <= s.size(); ++i) {
    if (Lower(s[i]) == 'd' && s[i + 1] == '.' && Lower(s[i + 2]) == 'o' && s[i + 3] == '.' &&
        Lower(s[i + 4]) == 'b' && !IsAlpha(Before(s, i))) {
      return true;
    }
  }
  return false;
}

bool HasSsnWords(std::string_view s) {
  // Every word looked for starts "ss" or "so".
  bool maybe = false;
  for (size_t i = 0; i + 1 < s.size() && !maybe; ++i) {
    maybe = Lower(s[i]) == 's' && (Lower(s[i + 1]) == 's' || Lower(s[i + 1]) == 'o');
  }
  if (!maybe) return false;
  bool social = false;
  bool hit = AnyWord(s, [&](std::string_view w) {
    if (w == "ssn" || w == "ssns" || w == "socialsecurity") return true;
    if (social && w == "security") return true;
    social = w == "social";
    return false;
  });
  if (hit) return true;
  for (size_t i = 0; i + 3 <= s.size(); ++i) {  // "SS#"
    if (Lower(s[i]) == 's' && Lower(s[i + 1]) == 's' && s[i + 2] == '#' && !IsAlpha(Before(s, i))) {
      return true;
    }
  }
  return false;
}

// The text a context word must appear in: up to 48 bytes before `begin`, on the same line.
std::string_view LookBehind(std::string_view text, size_t begin) {
  constexpr size_t kWindow = 48;
  size_t start = begin > kWindow ? begin - kWindow : 0;
  std::string_view w = text.substr(start, begin - start);
  size_t nl = w.find_last_of('\n');
  if (nl != std::string_view::npos) w.remove_prefix(nl + 1);
  return w;
}

bool DobContext(std::string_view text, size_t begin, const Context& ctx) {
  return ctx.DobKey() || HasDobWords(LookBehind(text, begin));
}

bool SsnContext(std::string_view text, size_t begin, const Context& ctx) {
  return ctx.SsnKey() || HasSsnWords(LookBehind(text, begin));
}

// ---- Secrets ---------------------------------------------------------------------------------

bool IsB64Url(char c) { return IsAlnum(c) || c == '_' || c == '-'; }
bool IsBearerChar(char c) {
  return IsAlnum(c) || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '-';
}

// The end of the run of bytes satisfying `pred` that starts at `i`.
template <typename Pred>
size_t RunEnd(std::string_view text, size_t i, Pred pred) {
  while (i < text.size() && pred(text[i])) ++i;
  return i;
}

bool IsBase64(char c) { return IsAlnum(c) || c == '+' || c == '/' || c == '='; }

// A PEM private key header. The finding runs on over the body through the END line, line by
// line: a body line is base64 only; lines break at "\n", "\r\n" or their JSON escapes "\\n"; a
// blank line or any other line ends the body (and the finding, without the END line). A key
// pasted on one line with spaces is followed over chunks of 40 base64 characters or more.
bool ValidatePem(std::string_view text, Span& span, const Context&) {
  size_t i = span.end;
  while (true) {
    size_t j = i;
    int breaks = 0;
    bool space = false;
    while (j < text.size()) {
      if (text[j] == '\n') {
        ++breaks;
        ++j;
      } else if (text[j] == '\r' || text[j] == ' ' || text[j] == '\t') {
        space |= text[j] != '\r';
        ++j;
      } else if (text[j] == '\\' && (At(text, j + 1) == 'n' || At(text, j + 1) == 'r')) {
        breaks += At(text, j + 1) == 'n';
        j += 2;
      } else {
        break;
      }
    }
    if (breaks >= 2 || (breaks == 0 && !space)) break;
    if (text.substr(j, 9) == "-----END ") {
      size_t close = text.substr(j + 9, 64).find("-----");
      if (close != std::string_view::npos) i = j + 9 + close + 5;
      break;
    }
    size_t run_end = RunEnd(text, j, IsBase64);
    // A line ends (after any spaces) at a line break, a quote or escape (a key inside JSON text),
    // the END line or the end of the text; a chunk of a one-line key also at a space.
    size_t k = RunEnd(text, run_end, [](char c) { return c == ' ' || c == '\t'; });
    char next = At(text, k);
    bool line_ends = k == text.size() || next == '\n' || next == '\r' || next == '"' ||
                     next == '\\' || text.substr(k, 5) == "-----" || (breaks == 0 && k > run_end);
    if (run_end == j || !line_ends) break;
    if (breaks == 0 && run_end - j < 40 && text[run_end - 1] != '=') break;
    i = run_end;
  }
  span.end = i;
  return true;
}

bool ValidateExact(std::string_view, Span&, const Context&) { return true; }

// Tokens with a fixed prefix, matched on their first characters: the finding runs over the rest
// of the token, which must then end (not run on into a word character).
template <bool (*Char)(char)>
bool ValidateTokenRun(std::string_view text, Span& span, const Context&) {
  size_t end = RunEnd(text, span.end, Char);
  if (IsWord(At(text, end))) {
    span.skip_until = end;
    return false;
  }
  span.end = end;
  return true;
}
bool IsAlnumChar(char c) { return IsAlnum(c); }
bool IsWordChar(char c) { return IsWord(c); }
bool IsSlackChar(char c) { return IsAlnum(c) || c == '-'; }

// AIza + 35: the key must not run on.
bool ValidateGoogleKey(std::string_view text, Span& span, const Context&) {
  char next = At(text, span.end);
  return !(IsWord(next) || next == '-');
}

bool LooksLikeJwt(std::string_view token);

// "Bearer <token>": the finding is the token. It must be at least 16 characters (the padding '='
// aside) and hold a digit, so that prose ("bearer authentication") is left alone.
bool ValidateBearer(std::string_view text, Span& span, const Context& ctx) {
  size_t i = span.begin + 6;  // "Bearer"
  while (i < span.end && (text[i] == ' ' || text[i] == '\t')) ++i;
  size_t token_end = RunEnd(text, i, IsBearerChar);
  size_t end = RunEnd(text, token_end, [](char c) { return c == '='; });
  span.skip_until = end;
  if (end == token_end) {
    while (end > i && text[end - 1] == '.') --end;  // a sentence's full stop
  }
  size_t body = end;
  while (body > i && text[body - 1] == '=') --body;
  std::string_view token = text.substr(i, end - i);
  if (body - i < 16) return false;
  bool digit = false;
  for (char c : token) digit |= IsDigit(c);
  if (!digit) return false;
  span.begin = i;
  span.end = end;
  if (Enabled(ctx, Detector::kJwt) && LooksLikeJwt(token)) span.detector = Detector::kJwt;
  return true;
}

// ---- JWT -------------------------------------------------------------------------------------

// Where a JWT starting at `b` ends: eyJ<header>.<payload>.<signature>, the header at least 16
// characters (the shortest real one, {"alg":"none"}, is 19), the payload at least 2, the signature
// possibly empty (alg none); a JWE's two further segments are taken too. Returns 0 if there is
// none, with `header_end` set.
size_t JwtEnd(std::string_view text, size_t b, size_t& header_end) {
  header_end = RunEnd(text, b, IsB64Url);
  if (header_end - b < 16 || At(text, header_end) != '.') return 0;
  size_t payload_end = RunEnd(text, header_end + 1, IsB64Url);
  if (payload_end - header_end - 1 < 2 || At(text, payload_end) != '.') return 0;
  size_t end = RunEnd(text, payload_end + 1, IsB64Url);
  for (int extra = 0; extra < 2 && At(text, end) == '.' && IsB64Url(At(text, end + 1)); ++extra) {
    end = RunEnd(text, end + 1, IsB64Url);
  }
  return end;
}

bool LooksLikeJwt(std::string_view t) {
  size_t header_end;
  return t.substr(0, 3) == "eyJ" && JwtEnd(t, 0, header_end) == t.size();
}

bool ValidateJwt(std::string_view text, Span& span, const Context&) {
  size_t header_end;
  size_t end = JwtEnd(text, span.begin, header_end);
  if (end == 0) {
    span.skip_until = header_end;  // later starts in the same header run fail alike
    return false;
  }
  span.end = end;
  return true;
}

// ---- Email -----------------------------------------------------------------------------------

bool IsLocalChar(char c) {
  return IsAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
bool IsDomainChar(char c) { return IsAlnum(c) || c == '.' || c == '-'; }

bool ValidLabel(std::string_view l) {
  return !l.empty() && l.size() <= 63 && l.front() != '-' && l.back() != '-';
}

bool ValidTld(std::string_view l) {
  if (l.size() < 2 || !ValidLabel(l)) return false;
  if (l.substr(0, 4) == "xn--" || l.substr(0, 4) == "XN--") return l.size() > 4;
  for (char c : l) {
    if (!IsAlpha(c)) return false;
  }
  return true;
}

// local@domain, a practical subset of RFC 5322: a dot-atom local part of letters, digits and
// . _ % + - (1..64, no leading, trailing or doubled dots), and a domain of at least two labels
// (1..63 letters, digits, hyphens inside) ending in an alphabetic TLD, at most 253 bytes.
bool ValidateEmail(std::string_view text, Span& span, const Context&) {
  size_t at = text.find('@', span.begin);
  span.skip_until = at + 1;  // every candidate before the '@' shares its domain
  if (IsLocalChar(Before(text, span.begin))) return false;  // local part longer than 64
  size_t b = span.begin;
  while (b < at && (text[b] == '.' || text[b] == '-' || text[b] == '+')) ++b;
  std::string_view local = text.substr(b, at - b);
  if (local.empty() || local.size() > 64 || local.back() == '.' ||
      local.find("..") != std::string_view::npos) {
    return false;
  }
  size_t domain_end = RunEnd(text, at + 1, IsDomainChar);
  if (domain_end - at - 1 > 255) return false;
  std::string_view domain = text.substr(at + 1, domain_end - at - 1);
  // Drop trailing labels that cannot end a domain ("a@b.com." ends a sentence), keeping at
  // least two labels.
  while (true) {
    size_t dot = domain.find_last_of('.');
    if (dot == std::string_view::npos) return false;
    if (ValidTld(domain.substr(dot + 1))) break;
    domain = domain.substr(0, dot);
  }
  if (domain.size() > 253) return false;
  size_t start = 0;
  while (start <= domain.size()) {
    size_t dot = domain.find('.', start);
    if (dot == std::string_view::npos) dot = domain.size();
    if (!ValidLabel(domain.substr(start, dot - start))) return false;
    start = dot + 1;
  }
  span.begin = b;
  span.end = at + 1 + domain.size();
  return true;
}

// ---- IBAN ------------------------------------------------------------------------------------

struct IbanCountry {
  char code[3];
  uint8_t length;
};

// Lengths from the SWIFT IBAN registry (88 countries and territories).
constexpr IbanCountry kIbanCountries[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
    {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
    {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27},
    {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27},
    {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20},
    {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20}, {"MR", 27},
    {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24}, {"PL", 28},
    {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33}, {"SA", 24}, {"SC", 31},
    {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"SO", 23}, {"ST", 25}, {"SV", 28},
    {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20}, {"YE", 30},
};

int IbanLength(char a, char b) {
  for (const auto& c : kIbanCountries) {
    if (c.code[0] == a && c.code[1] == b) return c.length;
  }
  return 0;
}

// Country code, check digits, BBAN, printed with or without a space every four characters. The
// candidate is cut to the country's registered length (a following group of digits is not part of
// it) and must then end at a word boundary and pass ISO 13616 mod-97.
bool ValidateIban(std::string_view text, Span& span, const Context&) {
  int length = IbanLength(text[span.begin], text[span.begin + 1]);
  if (length == 0) return false;
  char alnum[34];
  int n = 0;
  size_t i = span.begin;
  for (; i < span.end && n < length; ++i) {
    if (text[i] == ' ') continue;
    alnum[n++] = text[i];
  }
  if (n < length || IsAlnum(At(text, i))) return false;
  if (!IbanChecksumValid(std::string_view(alnum, n))) return false;
  span.end = i;
  return true;
}

// ---- Payment cards ---------------------------------------------------------------------------

// Whether a number of `n` digits starting with `d` belongs to a card network that issues that
// length: Visa 4 (13-19), Mastercard 51-55 and 2221-2720 (16), Maestro 50/56-59 (13-19), Amex
// 34/37 (15), Diners 300-305/36/38/39 (14-19), JCB 3528-3589 (16-19), Discover, UnionPay, RuPay
// and others under 6 (13-19).
bool CardNetwork(const char* d, int n) {
  auto prefix = [&](int len) {
    int v = 0;
    for (int i = 0; i < len; ++i) v = v * 10 + (d[i] - '0');
    return v;
  };
  switch (d[0]) {
    case '4':
    case '6':
      return true;
    case '5': {
      int p2 = prefix(2);
      return (p2 >= 51 && p2 <= 55) ? n == 16 : true;
    }
    case '2': {
      int p4 = prefix(4);
      return p4 >= 2221 && p4 <= 2720 && n == 16;
    }
    case '3': {
      int p2 = prefix(2), p3 = prefix(3), p4 = prefix(4);
      if (p2 == 34 || p2 == 37) return n == 15;
      if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39) return n >= 14;
      if (p4 >= 3528 && p4 <= 3589) return n >= 16;
      return false;
    }
    default:
      return false;
  }
}

// 13 to 19 digits, bare or in groups split by one kind of separator (space or hyphen). Grouped
// numbers may be followed by another group that is not part of the card: the longest run of
// whole groups that passes is taken. Each candidate must belong to a card network (by prefix and
// length) and pass the Luhn check.
bool ValidateCard(std::string_view text, Span& span, const Context&) {
  char digits[24];
  int n = 0;
  // Digits so far at the end of each group, and where that group ends in the text.
  int group_digits[12];
  size_t group_end[12];
  int groups = 0;
  char sep = 0;
  for (size_t i = span.begin; i < span.end; ++i) {
    char c = text[i];
    if (IsDigit(c)) {
      if (n == 24) return false;
      digits[n++] = c;
      continue;
    }
    if (sep == 0) sep = c;
    if (c != sep || groups == 11) return false;
    group_digits[groups] = n;
    group_end[groups++] = i;
  }
  group_digits[groups] = n;
  group_end[groups++] = span.end;
  for (int g = groups - 1; g >= 0; --g) {
    int len = group_digits[g];
    if (len < 13) break;
    if (len > 19) continue;
    if (CardNetwork(digits, len) && LuhnValid(std::string_view(digits, len))) {
      span.end = group_end[g];
      return true;
    }
  }
  return false;
}

// ---- SSN -------------------------------------------------------------------------------------

// Area 001-899 but not 666, group 01-99, serial 0001-9999 (the SSA's rules since 2011).
bool SsnNumberValid(int area, int group, int serial) {
  return area > 0 && area != 666 && area < 900 && group > 0 && serial > 0;
}

// True if the candidate continues a longer number: a digit group joined by `sep` before or after.
bool PartOfLongerNumber(std::string_view text, const Span& span, char sep) {
  return (Before(text, span.begin) == sep && IsDigit(Before(text, span.begin - 1))) ||
         (At(text, span.end) == sep && IsDigit(At(text, span.end + 1)));
}

// 123-45-6789: no context needed.
bool ValidateSsnDashed(std::string_view text, Span& span, const Context&) {
  size_t b = span.begin;
  if (PartOfLongerNumber(text, span, '-')) return false;
  return SsnNumberValid(Digits(text, b, 3), Digits(text, b + 4, 2), Digits(text, b + 7, 4));
}

// 123 45 6789 and 123456789: only with "ssn"/"social security" nearby or under such a key.
bool ValidateSsnSpaced(std::string_view text, Span& span, const Context& ctx) {
  size_t b = span.begin;
  if (PartOfLongerNumber(text, span, ' ')) return false;
  return SsnNumberValid(Digits(text, b, 3), Digits(text, b + 4, 2), Digits(text, b + 7, 4)) &&
         SsnContext(text, b, ctx);
}

bool ValidateSsnBare(std::string_view text, Span& span, const Context& ctx) {
  size_t b = span.begin;
  return SsnNumberValid(Digits(text, b, 3), Digits(text, b + 3, 2), Digits(text, b + 5, 4)) &&
         SsnContext(text, b, ctx);
}

// ---- Phone -----------------------------------------------------------------------------------

// Counts digits and checks the punctuation between them: at most one pair of parentheses around
// digits, no two separators in a row other than ") " and " (".
bool PhonePunctuationOk(std::string_view s, int& digits) {
  digits = 0;
  int parens = 0;
  bool open = false;
  char prev = 0;
  for (char c : s) {
    if (IsDigit(c)) {
      ++digits;
    } else if (c == '(') {
      if (open || parens == 1 || IsDigit(prev) || prev == '(') return false;
      open = true;
      ++parens;
    } else if (c == ')') {
      if (!open || !IsDigit(prev)) return false;
      open = false;
    } else {  // ' ', '.', '-'
      if (!IsDigit(prev) && !(prev == ')' && c == ' ')) return false;
    }
    prev = c;
  }
  return !open && IsDigit(prev);
}

// +<country code><number>: 8 to 15 digits (E.164), grouped by single spaces, dots or hyphens,
// the area code optionally in parentheses. The '+' must not follow a letter or digit ("3+4").
bool ValidatePhoneIntl(std::string_view text, Span& span, const Context&) {
  if (IsAlnum(Before(text, span.begin))) return false;
  int digits = 0;
  if (!PhonePunctuationOk(text.substr(span.begin + 1, span.end - span.begin - 1), digits)) {
    return false;
  }
  return digits >= 8 && digits <= 15;
}

// NANP: area code and exchange each start with 2-9.
bool NanpValid(int area, int exchange) { return area >= 200 && exchange >= 200; }

// (415) 555-2671, 1 (415) 555-2671.
bool ValidatePhoneUsParen(std::string_view text, Span& span, const Context&) {
  size_t open = text.find('(', span.begin);
  size_t b = open + 1;
  size_t ex = b + 4;
  while (ex < span.end && !IsDigit(text[ex])) ++ex;
  if (PartOfLongerNumber(text, span, '-') || PartOfLongerNumber(text, span, '.')) return false;
  return NanpValid(Digits(text, b, 3), Digits(text, ex, 3));
}

// 415-555-2671, 415.555.2671, 1-415-555-2671: one kind of separator throughout. Spaces alone
// ("415 555 2671") are not taken: too often a list of numbers.
bool ValidatePhoneUsDashed(std::string_view text, Span& span, const Context&) {
  std::string_view s = text.substr(span.begin, span.end - span.begin);
  size_t b = 0;
  if (s.size() == 14) b = 2;  // "1-" prefix
  char sep = s[b + 3];
  if (s[b + 7] != sep || (b == 2 && s[1] != sep)) return false;
  if (PartOfLongerNumber(text, span, sep)) return false;
  return NanpValid(Digits(s, b, 3), Digits(s, b + 4, 3));
}

// 010.001.002.003: an IPv4 address with zero padding, not a phone number.
bool LooksLikeDottedQuad(std::string_view s) {
  int groups = 1, len = 0;
  for (char c : s) {
    if (c == '.') {
      ++groups;
      len = 0;
    } else if (++len > 3) {
      return false;
    }
  }
  return groups == 4;
}

// National European numbers with a trunk 0: 020 7946 0958, 06 12 34 56 78, 030-1234-5678. One
// separator throughout, 9 to 12 digits in all (a date such as 01.02.2024 has 8), not starting
// 00, not a zero-padded dotted quad or SSN-shaped, not part of a longer list of numbers.
bool ValidatePhoneNational(std::string_view text, Span& span, const Context&) {
  std::string_view s = text.substr(span.begin, span.end - span.begin);
  char sep = 0;
  int digits = 0;
  for (char c : s) {
    if (IsDigit(c)) {
      ++digits;
    } else {
      if (sep != 0 && c != sep) return false;
      sep = c;
    }
  }
  if (digits < 9 || digits > 12) return false;
  if (s[1] == '0') return false;  // 00 starts an international number, not a national one
  if (sep == '.' && LooksLikeDottedQuad(s)) return false;
  if (s.size() == 11 && s[3] == '-' && s[6] == '-') return false;  // SSN-shaped: 012-34-5678
  return !PartOfLongerNumber(text, span, sep);
}

// ---- IP addresses ----------------------------------------------------------------------------

// True if the word before `begin` (skipping spaces, ':' and '=') names a version.
bool AfterVersionWord(std::string_view text, size_t begin) {
  size_t i = begin;
  while (i > 0 &&
         (text[i - 1] == ' ' || text[i - 1] == ':' || text[i - 1] == '=' || text[i - 1] == '\t')) {
    --i;
  }
  size_t end = i;
  while (i > 0 && IsAlpha(text[i - 1])) --i;
  if (end - i > 8) return false;
  char w[9];
  for (size_t k = i; k < end; ++k) w[k - i] = Lower(text[k]);
  std::string_view word(w, end - i);
  return word == "version" || word == "ver" || word == "v" || word == "release" ||
         word == "build" || word == "rev" || word == "firmware" || word == "fw";
}

// Dotted quad, each octet 0-255. Not part of a longer dotted number (1.2.3.4.5, a version), and
// not right after a word like "version", "release" or "build". A bare 1.2.3.4 is taken: it is a
// valid address and nothing tells it from a four-part version.
bool ValidateIpv4(std::string_view text, Span& span, const Context&) {
  if ((Before(text, span.begin) == '.' && IsDigit(Before(text, span.begin - 1))) ||
      (At(text, span.end) == '.' && IsDigit(At(text, span.end + 1)))) {
    return false;
  }
  int octet = 0;
  for (size_t i = span.begin; i <= span.end; ++i) {
    if (i == span.end || text[i] == '.') {
      if (octet > 255) return false;
      octet = 0;
    } else {
      octet = octet * 10 + (text[i] - '0');
    }
  }
  return !AfterVersionWord(text, span.begin);
}

// Anything inet_pton(AF_INET6) accepts (full, compressed, IPv4-mapped), standing alone (not inside
// a longer run of letters, digits, colons: "std::string", "12:30:45") and holding a digit.
bool ValidateIpv6(std::string_view text, Span& span, const Context&) {
  char before = Before(text, span.begin);
  if (IsWord(before) || before == ':' || before == '.') return false;
  size_t end = span.end;
  if (end - span.begin > 45) return false;
  char after = At(text, end);
  if (IsWord(after) || after == ':' || (after == '.' && IsDigit(At(text, end + 1)))) return false;
  char buf[46];
  bool digit = false;
  for (size_t i = span.begin; i < end; ++i) {
    buf[i - span.begin] = text[i];
    digit |= IsDigit(text[i]);
  }
  buf[end - span.begin] = '\0';
  in6_addr addr;
  return digit && inet_pton(AF_INET6, buf, &addr) == 1;
}

// ---- Dates of birth --------------------------------------------------------------------------

bool LeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool DateValid(int y, int m, int d, bool two_digit_year) {
  if (m < 1 || m > 12 || d < 1) return false;
  if (!two_digit_year && (y < 1880 || y > 2099)) return false;
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (d > kDays[m - 1]) return false;
  return !(m == 2 && d == 29 && !two_digit_year && !LeapYear(y));
}

int MonthFromName(std::string_view s, size_t& i) {
  static constexpr const char* kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                            "jul", "aug", "sep", "oct", "nov", "dec"};
  if (i + 3 > s.size()) return 0;
  char m[3] = {Lower(s[i]), Lower(s[i + 1]), Lower(s[i + 2])};
  for (int k = 0; k < 12; ++k) {
    if (std::memcmp(m, kMonths[k], 3) == 0) {
      while (i < s.size() && IsAlpha(s[i])) ++i;
      return k + 1;
    }
  }
  return 0;
}

// Reads a run of digits at s[i]; returns its value and length.
int Number(std::string_view s, size_t& i, int& len) {
  int v = 0;
  len = 0;
  while (i < s.size() && IsDigit(s[i]) && len < 9) {
    v = v * 10 + (s[i] - '0');
    ++i;
    ++len;
  }
  return v;
}

// A calendar date (1880-2099, real day of the month) in one of the shapes the patterns find:
// 1980-01-02[T...], 1980/01/02, 02/01/1980 (either day or month first), 2.1.80, 2 January 1980,
// Jan. 2nd, 1980, 19800102. Only as a date of birth: a context word before it on the same line
// ("dob", "date of birth", "born", "birthdate", "D.O.B.") or a key named so.
bool ValidateDob(std::string_view text, Span& span, const Context& ctx) {
  std::string_view s = text.substr(span.begin, span.end - span.begin);
  bool ok = false;
  if (IsAlpha(s[0])) {  // Month 2, 1980
    size_t i = 0;
    int m = MonthFromName(s, i);
    while (i < s.size() && !IsDigit(s[i])) ++i;
    int len;
    int d = Number(s, i, len);
    while (i < s.size() && !IsDigit(s[i])) ++i;
    int y = Number(s, i, len);
    ok = DateValid(y, m, d, false);
  } else {
    size_t i = 0;
    int len1, len2, len3;
    int a = Number(s, i, len1);
    size_t after_day = i;
    if (len1 == 8) {  // 19800102
      ok = DateValid(a / 10000, a / 100 % 100, a % 100, false);
    } else {
      while (i < s.size() && !IsAlnum(s[i])) ++i;
      if (i < s.size() && IsDigit(s[i])) {  // 1980-01-02, 02/01/1980
        int b = Number(s, i, len2);
        ++i;
        int c = Number(s, i, len3);
        if (len1 == 4) {
          ok = DateValid(a, b, c, false);
        } else {
          bool two = len3 == 2;
          ok = DateValid(c, a, b, two) || DateValid(c, b, a, two);
        }
      } else {  // 2 January 1980, 2nd of Jan. 1980
        size_t j = after_day;
        if (j + 2 <= s.size() && IsAlpha(s[j])) j += 2;  // st, nd, rd, th
        while (j < s.size() && s[j] == ' ') ++j;
        if (j + 3 <= s.size() && Lower(s[j]) == 'o' && Lower(s[j + 1]) == 'f' && s[j + 2] == ' ') {
          j += 3;
        }
        int m = MonthFromName(s, j);
        while (j < s.size() && !IsDigit(s[j])) ++j;
        int y = Number(s, j, len3);
        ok = DateValid(y, m, a, false);
      }
    }
  }
  return ok && DobContext(text, span.begin, ctx);
}

// ---- The table -------------------------------------------------------------------------------

#define MONTH                                                                         \
  "(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|" \
  "sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"

// The SSA's rules in the pattern, so that most look-alikes are not even candidates (the
// validators check again).
#define SSN_AREA "(?:00[1-9]|0[1-9]\\d|[1-578]\\d\\d|6[0-57-9]\\d|66[0-57-9])"
#define SSN_GROUP "(?:0[1-9]|[1-9]\\d)"
#define SSN_SERIAL "(?:000[1-9]|00[1-9]\\d|0[1-9]\\d\\d|[1-9]\\d\\d\\d)"
#define OCTET "(?:25[0-5]|2[0-4]\\d|[01]\\d\\d|\\d\\d?)"

constexpr Alternative kAlternatives[] = {
    {Detector::kSecret, R"(-----BEGIN (?:[A-Z0-9]{1,16} ){0,4}PRIVATE KEY(?: BLOCK)?-----)",
     ValidatePem},
    {Detector::kSecret, R"(\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)", ValidateExact},
    {Detector::kSecret, R"(\bgh[pousr]_[A-Za-z0-9]{36})", ValidateTokenRun<IsAlnumChar>},
    {Detector::kSecret, R"(\bgithub_pat_[A-Za-z0-9_]{22})", ValidateTokenRun<IsWordChar>},
    {Detector::kSecret, R"(\bxox[abprs]-[A-Za-z0-9-]{10})", ValidateTokenRun<IsSlackChar>},
    {Detector::kSecret, R"(\b[rs]k_(?:live|test)_[A-Za-z0-9]{16})", ValidateTokenRun<IsAlnumChar>},
    {Detector::kSecret, R"(\bAIza[0-9A-Za-z_-]{35})", ValidateGoogleKey},
    {Detector::kSecret, R"(\b[Bb]earer[ \t]{1,16}[A-Za-z0-9._~+/-])", ValidateBearer},
    {Detector::kJwt, R"(\beyJ[A-Za-z0-9_-]{13})", ValidateJwt},
    {Detector::kEmail, R"([A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9])", ValidateEmail},
    {Detector::kIban, R"(\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b)",
     ValidateIban},
    {Detector::kCard, R"(\b[2-6]\d{12,18}\b)", ValidateCard},
    {Detector::kCard,
     R"(\b[2-6]\d{3}(?:[ -]\d{4}){2}[ -]\d{1,7}(?:[ -]\d{1,4})?\b|\b3\d{3}[ -]\d{6}[ -]\d{4,5}\b)",
     ValidateCard},
    {Detector::kSsn, R"(\b)" SSN_AREA "-" SSN_GROUP "-" SSN_SERIAL R"(\b)", ValidateSsnDashed},
    {Detector::kSsn, R"(\b)" SSN_AREA " " SSN_GROUP " " SSN_SERIAL R"(\b)", ValidateSsnSpaced},
    {Detector::kPhone, R"(\+[1-9][0-9 ().-]{5,24}\d\b)", ValidatePhoneIntl},
    {Detector::kPhone, R"((?:\b1[ .-]?)?\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}\b)", ValidatePhoneUsParen},
    {Detector::kPhone, R"(\b(?:1[.-])?\d{3}[.-]\d{3}[.-]\d{4}\b)", ValidatePhoneUsDashed},
    {Detector::kDob,
     R"(\b\d{4}-\d{1,2}-\d{1,2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b)"
     R"(|\b\d{4}[/.]\d{1,2}[/.]\d{1,2}\b)"
     R"(|\b\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})\b)"
     R"(|\b\d{1,2}(?:st|nd|rd|th)?(?: of)? )" MONTH R"(\.?,? \d{4}\b)"
     R"(|\b)" MONTH R"(\.? \d{1,2}(?:st|nd|rd|th)?,? \d{4}\b)"
     R"(|\b(?:18|19|20)\d{6}\b)",
     ValidateDob},
    {Detector::kPhone, R"(\b0\d{1,4}(?:[ .-]\d{2,4}){2,4}\b)", ValidatePhoneNational},
    {Detector::kIp, R"(\b(?:)" OCTET R"(\.){3})" OCTET R"(\b)", ValidateIpv4},
    {Detector::kIp, R"(\b[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3})",
     ValidateIpv6},
    {Detector::kIp, R"(::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?(?:\.\d{1,3}){0,3})",
     ValidateIpv6},
    {Detector::kSsn, R"(\b)" SSN_AREA SSN_GROUP SSN_SERIAL R"(\b)", ValidateSsnBare},
};

#undef MONTH
#undef SSN_AREA
#undef SSN_GROUP
#undef SSN_SERIAL
#undef OCTET

}  // namespace

static_assert(std::size(kAlternatives) <= kMaxAlternatives);

std::span<const Alternative> Alternatives() { return kAlternatives; }

bool Context::SsnKey() const {
  if (ssn_ < 0) ssn_ = !key_.empty() && HasSsnWords(key_);
  return ssn_ != 0;
}

bool Context::DobKey() const {
  if (dob_ < 0) dob_ = !key_.empty() && HasDobWords(key_);
  return dob_ != 0;
}

bool LuhnValid(std::string_view digits) {
  int sum = 0;
  bool dbl = false;
  for (size_t i = digits.size(); i-- > 0;) {
    if (!IsDigit(digits[i])) return false;
    int d = digits[i] - '0';
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    dbl = !dbl;
  }
  return !digits.empty() && sum % 10 == 0;
}

bool IbanChecksumValid(std::string_view s) {
  if (s.size() < 5 || s.size() > 34) return false;
  // Move the first four characters to the end, letters become 10..35, the number mod 97 is 1.
  int rem = 0;
  for (size_t k = 0; k < s.size(); ++k) {
    char c = s[(k + 4) % s.size()];
    if (IsDigit(c)) {
      rem = (rem * 10 + (c - '0')) % 97;
    } else if (IsUpper(c)) {
      rem = (rem * 100 + (c - 'A' + 10)) % 97;
    } else {
      return false;
    }
  }
  return rem == 1;
}

void AppendPartial(std::string& out, std::string_view value, bool keep_year) {
  size_t keep_from = value.size();  // letters and digits at or after this offset are kept
  if (keep_year) {
    // Keep the four-digit year, if the date has one.
    for (size_t i = 0; i + 4 <= value.size(); ++i) {
      if (IsDigit(value[i]) && IsDigit(value[i + 1]) && IsDigit(value[i + 2]) &&
          IsDigit(value[i + 3]) && !IsDigit(Before(value, i)) && !IsDigit(At(value, i + 4))) {
        for (size_t k = 0; k < value.size(); ++k) {
          out.push_back((k >= i && k < i + 4) || !IsAlnum(value[k]) ? value[k] : '*');
        }
        return;
      }
    }
  } else {
    size_t alnum = 0;
    for (char c : value) alnum += IsAlnum(c);
    size_t keep = alnum >= 8 ? 4 : alnum / 2;
    while (keep > 0 && keep_from > 0) {
      --keep_from;
      if (IsAlnum(value[keep_from])) --keep;
    }
  }
  for (size_t k = 0; k < value.size(); ++k) {
    out.push_back(k >= keep_from || !IsAlnum(value[k]) ? value[k] : '*');
  }
}

std::string NormalizeForHash(Detector d, std::string_view value) {
  std::string out;
  out.reserve(value.size());
  switch (d) {
    case Detector::kSsn:
    case Detector::kDob:
    case Detector::kPhone:
    case Detector::kCard:
    case Detector::kIban:
      for (char c : value) {
        if (IsAlnum(c)) out.push_back(IsLower(c) ? static_cast<char>(c - 'a' + 'A') : c);
      }
      return out;
    case Detector::kEmail:
    case Detector::kIp:
      for (char c : value) out.push_back(Lower(c));
      return out;
    case Detector::kSecret:
    case Detector::kJwt:
      break;
  }
  out.assign(value);
  return out;
}

bool MayContainFinding(std::string_view text, const Context& ctx) {
  auto on = [&](Detector d) { return Enabled(ctx, d); };
  // Bytes that matter below; everything else (most letters, spaces) is passed over quickly.
  static constexpr auto kInteresting = [] {
    std::array<bool, 256> t{};
    for (unsigned char c : std::string_view(".:@+AgxkeB-")) t[c] = true;
    for (int c = '0'; c <= '9'; ++c) t[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
    return t;
  }();
  int digits = 0, upper = 0, dots = 0, colons = 0;
  bool at = false, plus = false, secret_prefix = false, jwt_prefix = false;
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    char c = text[i];
    if (!kInteresting[static_cast<unsigned char>(c)]) continue;
    if (IsDigit(c)) {
      ++digits;
      continue;
    }
    switch (c) {
      case '.':
        ++dots;
        break;
      case ':':
        ++colons;
        break;
      case '@':
        at = true;
        break;
      case '+':
        plus = true;
        break;
      case 'A':  // AKIA, ASIA, AIza
        ++upper;
        secret_prefix |= ((At(text, i + 1) == 'K' || At(text, i + 1) == 'S') &&
                          At(text, i + 2) == 'I' && At(text, i + 3) == 'A') ||
                         text.substr(i, 4) == "AIza";
        break;
      case 'g':  // gh?_, github_pat_
        secret_prefix |= At(text, i + 1) == 'h' || text.substr(i, 11) == "github_pat_";
        break;
      case 'x':  // xox?-
        secret_prefix |= text.substr(i, 3) == "xox";
        break;
      case 'k':  // sk_, rk_
        secret_prefix |= At(text, i + 1) == '_';
        break;
      case 'e':  // Bearer, eyJ
        secret_prefix |= text.substr(i, 5) == "earer";
        jwt_prefix |= text.substr(i, 3) == "eyJ";
        break;
      case '-':  // -----BEGIN
        secret_prefix |= text.substr(i, 5) == "-----";
        break;
      default:
        upper += IsUpper(c);
        break;
    }
  }
  if (on(Detector::kSecret) && secret_prefix) return true;
  if (on(Detector::kJwt) && jwt_prefix) return true;
  if (on(Detector::kEmail) && at) return true;
  if (on(Detector::kIban) && digits >= 2 && upper >= 2 && n >= 12) return true;
  if (on(Detector::kCard) && digits >= 13) return true;
  if (on(Detector::kSsn) && digits >= 9) return true;
  // E.164 needs a '+' and 8 digits; US and national numbers 9 or more.
  if (on(Detector::kPhone) && (digits >= 9 || (plus && digits >= 8))) return true;
  if (on(Detector::kIp) && ((digits >= 4 && dots >= 3) || (digits >= 1 && colons >= 2))) {
    return true;
  }
  // Every date has 4 digits or more, and a date of birth needs its context.
  if (on(Detector::kDob) && digits >= 4 && (ctx.DobKey() || HasDobWords(text))) return true;
  return false;
}

}  // namespace aegis::redact::internal
