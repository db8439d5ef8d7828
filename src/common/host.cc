#include "common/host.h"

#include <array>
#include <charconv>
#include <cstdint>
#include <utility>

#include "common/strings.h"

namespace aegis::common {

namespace {

bool IsDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool IsLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// At most `max` bytes of `s` for an error message, with "..." when cut; callers pass only text
// already checked to be printable ASCII.
std::string Excerpt(std::string_view s, size_t max = 8) {
  if (s.size() <= max) return std::string(s);
  return StrCat(s.substr(0, max), "...");
}

// A label an IPv4 parser reads as a number: decimal or octal digits, or "0x" and zero or more
// hex digits (the WHATWG URL parser reads a bare "0x" as 0).
bool IsNumericLabel(std::string_view label) {
  if (IsDigits(label)) return true;
  if (label.size() < 2 || label[0] != '0' || label[1] != 'x') return false;
  for (char c : label.substr(2)) {
    if (!IsLowerHex(c)) return false;
  }
  return true;
}

// True when the name ends in a numeric label. The WHATWG URL parser then reads the whole name
// as an IPv4 address (and fails when other labels are not numbers), and inet_aton reads
// 127.1, 0x7f000001 or 017700000001 as 127.0.0.1; either way it is not a DNS name.
bool EndsInNumber(std::string_view host) {
  size_t dot = host.rfind('.');
  return IsNumericLabel(dot == std::string_view::npos ? host : host.substr(dot + 1));
}

// Fills `octets` when `host` is exactly four decimal numbers 0-255 without leading zeros.
bool ParseCanonicalDottedQuad(std::string_view host, std::array<uint8_t, 4>* octets = nullptr) {
  int parts = 0;
  size_t pos = 0;
  while (true) {
    size_t end = host.find('.', pos);
    std::string_view label = host.substr(pos, end == std::string_view::npos ? end : end - pos);
    if (!IsDigits(label) || label.size() > 3 || (label.size() > 1 && label[0] == '0')) {
      return false;
    }
    int v = 0;
    std::from_chars(label.data(), label.data() + label.size(), v);
    if (v > 255 || parts == 4) return false;
    if (octets) (*octets)[parts] = static_cast<uint8_t>(v);
    ++parts;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return parts == 4;
}

// ---- IPv6 ----

using Ipv6 = std::array<uint16_t, 8>;

// Parses the RFC 4291 section 2.2 text forms: eight groups of 1-4 hex digits, at most one "::"
// standing for one or more zero groups, and optionally a canonical dotted quad as the last two
// groups. `s` is lower case and has no brackets.
bool ParseIpv6(std::string_view s, Ipv6& out) {
  // The longest text form: "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".
  if (s.empty() || s.size() > 45) return false;
  auto parse_part = [](std::string_view part, uint16_t* groups, int& count) {
    count = 0;
    if (part.empty()) return true;
    size_t pos = 0;
    while (true) {
      size_t end = part.find(':', pos);
      std::string_view g = part.substr(pos, end == std::string_view::npos ? end : end - pos);
      if (end == std::string_view::npos && g.find('.') != std::string_view::npos) {
        std::array<uint8_t, 4> q{};
        if (count > 6 || !ParseCanonicalDottedQuad(g, &q)) return false;
        groups[count++] = static_cast<uint16_t>(q[0] << 8 | q[1]);
        groups[count++] = static_cast<uint16_t>(q[2] << 8 | q[3]);
        return true;
      }
      if (count >= 8 || g.empty() || g.size() > 4) return false;
      uint16_t v = 0;
      for (char c : g) {
        if (!IsLowerHex(c)) return false;
        v = static_cast<uint16_t>(v << 4 | (c <= '9' ? c - '0' : c - 'a' + 10));
      }
      groups[count++] = v;
      if (end == std::string_view::npos) return true;
      pos = end + 1;
    }
  };
  uint16_t head[8] = {}, tail[8] = {};
  int nh = 0, nt = 0;
  size_t gap = s.find("::");
  if (gap == std::string_view::npos) {
    if (!parse_part(s, head, nh) || nh != 8) return false;
    for (int i = 0; i < 8; ++i) out[i] = head[i];
    return true;
  }
  if (s.find("::", gap + 1) != std::string_view::npos) return false;  // two gaps, or ":::"
  std::string_view before = s.substr(0, gap);
  if (before.find('.') != std::string_view::npos) return false;  // a dotted quad only at the end
  if (!parse_part(before, head, nh) || !parse_part(s.substr(gap + 2), tail, nt)) return false;
  if (nh + nt > 7) return false;
  out.fill(0);
  for (int i = 0; i < nh; ++i) out[i] = head[i];
  for (int i = 0; i < nt; ++i) out[8 - nt + i] = tail[i];
  return true;
}

// True for the forms that carry an IPv4 address in their last 32 bits and reach it (through
// the local stack or a translator).
bool EmbedsIpv4(const Ipv6& a) {
  bool zero_0_3 = a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0;
  if (zero_0_3 && a[4] == 0 && a[5] == 0xffff) return true;  // ::ffff:a.b.c.d, mapped
  if (zero_0_3 && a[4] == 0xffff && a[5] == 0) return true;  // ::ffff:0:a.b.c.d, translated
  if (zero_0_3 && a[4] == 0 && a[5] == 0 && !(a[6] == 0 && a[7] <= 1)) {
    return true;  // ::a.b.c.d, compatible (deprecated); "::" and "::1" are not
  }
  if (a[0] == 0x64 && a[1] == 0xff9b) {
    if (a[2] == 0 && a[3] == 0 && a[4] == 0 && a[5] == 0) return true;  // NAT64, RFC 6052
    if (a[2] == 1) return true;                                         // local NAT64, RFC 8215
  }
  return false;
}

// RFC 5952: lower case, no leading zeros, the longest run of two or more zero groups (the
// first, on a tie) as "::", in brackets.
std::string FormatIpv6(const Ipv6& a) {
  int best = -1, best_len = 1;
  for (int i = 0; i < 8;) {
    if (a[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && a[j] == 0) ++j;
    if (j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  std::string out = "[";
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (i > 0 && i != best + best_len) out.push_back(':');
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      int d = (a[i] >> shift) & 0xf;
      if (d != 0 || started || shift == 0) {
        out.push_back(kHex[d]);
        started = true;
      }
    }
  }
  out.push_back(']');
  return out;
}

// ---- Punycode (RFC 3492 section 5 parameters) ----

constexpr uint32_t kBase = 36;
constexpr uint32_t kTMin = 1;
constexpr uint32_t kTMax = 26;
constexpr uint32_t kSkew = 38;
constexpr uint32_t kDamp = 700;
constexpr uint32_t kInitialBias = 72;
constexpr uint32_t kInitialN = 0x80;
// Every intermediate value stays below this; larger means the input is not a real label.
constexpr uint32_t kMaxInt = 0x7fffffff;
constexpr size_t kMaxPunycodeBytes = 63 - 4;  // a label, less "xn--"

uint32_t Adapt(uint32_t delta, uint32_t num_points, bool first_time) {
  delta = first_time ? delta / kDamp : delta / 2;
  delta += delta / num_points;
  uint32_t k = 0;
  while (delta > ((kBase - kTMin) * kTMax) / 2) {
    delta /= kBase - kTMin;
    k += kBase;
  }
  return k + (kBase - kTMin + 1) * delta / (delta + kSkew);
}

uint32_t Threshold(uint32_t k, uint32_t bias) {
  if (k <= bias) return kTMin;
  if (k >= bias + kTMax) return kTMax;
  return k - bias;
}

int DigitValue(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= '0' && c <= '9') return c - '0' + 26;
  return -1;
}

char DigitChar(uint32_t d) { return static_cast<char>(d < 26 ? 'a' + d : '0' + (d - 26)); }

// RFC 3492 section 6.3, lower-case digits. Returns false on overflow.
bool EncodePunycode(const std::u32string& in, std::string& out) {
  out.clear();
  for (char32_t c : in) {
    if (c < kInitialN) out.push_back(static_cast<char>(c));
  }
  const auto basic = static_cast<uint32_t>(out.size());
  uint32_t handled = basic;
  if (basic > 0) out.push_back('-');
  uint32_t n = kInitialN, delta = 0, bias = kInitialBias;
  while (handled < in.size()) {
    uint32_t m = 0xffffffff;
    for (char32_t c : in) {
      if (c >= n && c < m) m = c;
    }
    if (m - n > (kMaxInt - delta) / (handled + 1)) return false;
    delta += (m - n) * (handled + 1);
    n = m;
    for (char32_t c : in) {
      if (c < n && ++delta > kMaxInt) return false;
      if (c != n) continue;
      uint32_t q = delta;
      for (uint32_t k = kBase;; k += kBase) {
        uint32_t t = Threshold(k, bias);
        if (q < t) break;
        out.push_back(DigitChar(t + (q - t) % (kBase - t)));
        q = (q - t) / (kBase - t);
      }
      out.push_back(DigitChar(q));
      bias = Adapt(delta, handled + 1, handled == basic);
      delta = 0;
      ++handled;
    }
    ++delta;
    ++n;
  }
  return true;
}

// ---- IDNA look-alikes ----
//
// The approach, and its limits. A full check would apply IDNA2008 (RFC 5891-5893, with Unicode
// tables) and UTS #39's confusable and mixed-script data; neither is available here, so an
// "xn--" label is decoded and held to a few table-free rules that catch the known spoofing
// patterns:
//   1. Canonical Punycode only, and not decoding to plain ASCII ("xn--abc-" is "abc").
//   2. No character that is invisible (zero-width, soft hyphen, BOM, fillers, variation
//      selectors, tags), punctuation or a symbol (look-alike dots and slashes: "。", "∕"), or a
//      compatibility form that folds to ASCII (fullwidth "ａ", mathematical "𝐚", U+212A KELVIN
//      SIGN, "ﬁ"). IDNA2008 disallows all of them.
//   3. Latin, Cyrillic and Greek letters do not mix in one label ("pаypal" with a Cyrillic
//      "а"). Digits, '-', combining marks and other scripts (Han, Arabic, ...) are neutral
//      here, so "例え" or "café" pass.
//   4. A label made only of Cyrillic (or only of Greek) letters that look like Latin ones,
//      plus digits and '-', is refused as a whole-script look-alike ("аррӏе" for "apple").
// Known limits: the confusable table below is small and covers Latin look-alikes only (not
// digits, "з" for "3"); other scripts' look-alikes (Armenian "օ", Cherokee) are not checked;
// combining marks are not normalised (NFC is not checked); rule 4 also refuses the few real
// words spelled only with those letters, such as the ".рус" top-level domain ("xn--p1acf").
// Rule 2 also refuses the few characters IDNA2008 allows in context only: ZERO WIDTH (NON-)JOINER
// (some Persian and Indic names) and MIDDLE DOT (Catalan "l·l").
// An operator who needs such a name cannot list it; that is the price of refusing the spoofs.

enum class Script { kNeutral, kLatin, kGreek, kCyrillic, kOther };

bool InRange(char32_t c, char32_t lo, char32_t hi) { return c >= lo && c <= hi; }

Script ScriptOf(char32_t c) {
  if ((c >= '0' && c <= '9') || c == '-' || InRange(c, 0x0300, 0x036F)) return Script::kNeutral;
  if ((c >= 'a' && c <= 'z') || InRange(c, 0x00C0, 0x02AF) || InRange(c, 0x1E00, 0x1EFF) ||
      InRange(c, 0x2C60, 0x2C7F) || InRange(c, 0xA720, 0xA7FF) || InRange(c, 0xAB30, 0xAB6F)) {
    return Script::kLatin;
  }
  if (InRange(c, 0x0370, 0x03FF) || InRange(c, 0x1F00, 0x1FFF)) return Script::kGreek;
  if (InRange(c, 0x0400, 0x052F) || InRange(c, 0x1C80, 0x1C8F) || InRange(c, 0x2DE0, 0x2DFF) ||
      InRange(c, 0xA640, 0xA69F)) {
    return Script::kCyrillic;
  }
  return Script::kOther;
}

// Rule 2's blocks.
bool IsDisallowedInLabel(char32_t c) {
  static constexpr std::pair<char32_t, char32_t> kRanges[] = {
      {0x0080, 0x00BF},  // C1 controls, no-break space, Latin-1 punctuation, ª º
      {0x00D7, 0x00D7},  // ×
      {0x00F7, 0x00F7},  // ÷
      {0x115F, 0x1160},  // Hangul fillers
      {0x180B, 0x180F},  // Mongolian variation selectors and vowel separator
      {0x2000, 0x20CF},  // spaces, zero-width and bidi controls, punctuation ("․", "⁄"),
                         // super- and subscripts, currency
      {0x2100, 0x218F},  // letterlike symbols (Kelvin sign, Angstrom sign), number forms (Ⅰ Ⅴ)
      {0x2190, 0x2BFF},  // arrows, math operators ("∕", "∶"), enclosed alphanumerics, symbols
      {0x3000, 0x3003},  // ideographic space, comma, full stop, ditto
      {0x3164, 0x3164},  // Hangul filler
      {0xE000, 0xF8FF},  // private use
      {0xFB00, 0xFB06},  // Latin ligatures (ﬁ)
      {0xFE00, 0xFE1F},  // variation selectors, vertical forms
      {0xFE30, 0xFE6F},  // CJK compatibility and small forms ("﹒")
      {0xFEFF, 0xFEFF},  // zero-width no-break space (BOM)
      {0xFF00, 0xFFEF},  // fullwidth and halfwidth forms
      {0xFFF0, 0xFFFF},  // specials
      {0x1D400, 0x1D7FF},   // mathematical alphanumeric symbols
      {0xE0000, 0xE0FFF},   // tags, variation selectors supplement
      {0xF0000, 0x10FFFF},  // private use planes
  };
  for (const auto& [lo, hi] : kRanges) {
    if (InRange(c, lo, hi)) return true;
  }
  return false;
}

// Rule 4's table: Cyrillic and Greek letters (both cases) that render like a Latin letter.
bool LooksLatin(char32_t c) {
  static constexpr char32_t kLookAlikes[] = {
      // Cyrillic: а е о р с у х ѕ і ј һ ӏ ԁ ԛ ԝ ѵ ү ѡ, А В Е К М Н О Р С Т Х Ѕ І Ј Ү Ӏ Ԛ Ԝ
      0x0430, 0x0435, 0x043E, 0x0440, 0x0441, 0x0443, 0x0445, 0x0455, 0x0456, 0x0458, 0x04BB,
      0x04CF, 0x0501, 0x051B, 0x051D, 0x0475, 0x04AF, 0x0461, 0x0410, 0x0412, 0x0415, 0x041A,
      0x041C, 0x041D, 0x041E, 0x0420, 0x0421, 0x0422, 0x0425, 0x0405, 0x0406, 0x0408, 0x04AE,
      0x04C0, 0x051A, 0x051C,
      // Greek: α γ ε η ι κ ν ο ρ τ υ χ ω ϲ ϳ, Α Β Ε Ζ Η Ι Κ Μ Ν Ο Ρ Τ Υ Χ Ϲ
      // Ϳ
      0x03B1, 0x03B3, 0x03B5, 0x03B7, 0x03B9, 0x03BA, 0x03BD, 0x03BF, 0x03C1, 0x03C4, 0x03C5,
      0x03C7, 0x03C9, 0x03F2, 0x03F3, 0x0391, 0x0392, 0x0395, 0x0396, 0x0397, 0x0399, 0x039A,
      0x039C, 0x039D, 0x039F, 0x03A1, 0x03A4, 0x03A5, 0x03A7, 0x03F9, 0x037F};
  for (char32_t l : kLookAlikes) {
    if (c == l) return true;
  }
  return false;
}

// `label` is lower case and starts with "xn--".
Status CheckIdnaLabel(std::string_view label) {
  auto decoded = DecodePunycode(label.substr(4));
  if (!decoded.ok())
    return InvalidArgumentError("host has an \"xn--\" label that is not valid Punycode");
  bool ascii = true, latin = false, greek = false, cyrillic = false, all_look_latin = true;
  for (char32_t c : *decoded) {
    if (c >= 0x80) ascii = false;
    if (IsDisallowedInLabel(c)) {
      return InvalidArgumentError(
          "host has an IDNA label with an invisible, punctuation or ASCII-compatibility "
          "character (look-alike)");
    }
    switch (ScriptOf(c)) {
      case Script::kLatin:
        latin = true;
        break;
      case Script::kGreek:
        greek = true;
        break;
      case Script::kCyrillic:
        cyrillic = true;
        break;
      case Script::kNeutral:
        continue;
      case Script::kOther:
        break;
    }
    if (!LooksLatin(c)) all_look_latin = false;
  }
  if (ascii) {
    return InvalidArgumentError("host has an \"xn--\" label that decodes to plain ASCII");
  }
  if (int{latin} + int{greek} + int{cyrillic} > 1) {
    return InvalidArgumentError(
        "host has an IDNA label mixing Latin, Cyrillic or Greek letters (look-alike)");
  }
  if ((greek || cyrillic) && all_look_latin) {
    return InvalidArgumentError(
        "host has an IDNA label of only Cyrillic or Greek letters that look like Latin ones "
        "(look-alike)");
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::u32string> DecodePunycode(std::string_view in) {
  auto invalid = [] { return InvalidArgumentError("invalid Punycode"); };
  if (in.empty() || in.size() > kMaxPunycodeBytes) return invalid();
  for (char c : in) {
    if (DigitValue(c) < 0 && c != '-') return invalid();
  }
  std::u32string out;
  size_t pos = 0;
  // Everything before the last '-' is basic code points, copied; the rest are deltas.
  if (size_t delimiter = in.rfind('-'); delimiter != std::string_view::npos) {
    for (size_t i = 0; i < delimiter; ++i) out.push_back(static_cast<char32_t>(in[i]));
    pos = delimiter + 1;
  }
  uint32_t n = kInitialN, i = 0, bias = kInitialBias;
  while (pos < in.size()) {
    const uint32_t old_i = i;
    uint32_t w = 1;
    for (uint32_t k = kBase;; k += kBase) {
      if (pos >= in.size()) return invalid();
      const auto digit = static_cast<uint32_t>(DigitValue(in[pos++]));
      if (digit >= kBase) return invalid();  // a '-' among the deltas
      if (digit > (kMaxInt - i) / w) return invalid();
      i += digit * w;
      const uint32_t t = Threshold(k, bias);
      if (digit < t) break;
      if (w > kMaxInt / (kBase - t)) return invalid();
      w *= kBase - t;
    }
    const auto len = static_cast<uint32_t>(out.size() + 1);
    bias = Adapt(i - old_i, len, old_i == 0);
    if (i / len > kMaxInt - n) return invalid();
    n += i / len;
    i %= len;
    if (n < kInitialN || n > 0x10FFFF || (n >= 0xD800 && n <= 0xDFFF)) return invalid();
    if (out.size() >= kMaxPunycodeBytes) return invalid();
    out.insert(out.begin() + i, static_cast<char32_t>(n));
    ++i;
  }
  std::string again;
  if (!EncodePunycode(out, again) || again != in) return invalid();
  return out;
}

StatusOr<std::string> NormalizeHost(std::string_view host, int* port) {
  if (port) *port = 0;
  if (host.empty()) return InvalidArgumentError("empty host");
  for (unsigned char c : host) {
    if (c < 0x21 || c == 0x7f) return InvalidArgumentError("host contains a control byte or space");
    if (c >= 0x80) {
      return InvalidArgumentError("host is not ASCII; use its IDNA A-label (xn--...)");
    }
    if (c == '@') return InvalidArgumentError("host contains userinfo ('@')");
    if (c == '\\') return InvalidArgumentError("host contains a backslash");
    if (c == '%') return InvalidArgumentError("host contains percent-encoding");
    if (c == '/' || c == '?' || c == '#') {
      return InvalidArgumentError("host contains a path, query or fragment character");
    }
  }
  std::string h;
  h.reserve(host.size());
  for (char c : host) h.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c);

  std::string_view view = h;
  std::string_view port_text;
  bool has_port = false;
  if (view[0] == '[') {
    size_t close = view.find(']');
    if (close == std::string_view::npos) return InvalidArgumentError("unterminated IPv6 literal");
    std::string_view rest = view.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return InvalidArgumentError("junk after IPv6 literal");
      port_text = rest.substr(1);
      has_port = true;
    }
    view = view.substr(0, close + 1);
  } else {
    size_t colon = view.find(':');
    if (colon != std::string_view::npos) {
      port_text = view.substr(colon + 1);
      view = view.substr(0, colon);
      has_port = true;
      if (port_text.find(':') != std::string_view::npos) {
        return InvalidArgumentError(
            "host has more than one ':' (IPv6 literals must be in brackets)");
      }
    }
  }
  if (has_port) {
    if (port_text.empty()) return InvalidArgumentError("empty port");
    int p = 0;
    auto res = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (!IsDigits(port_text) || res.ec != std::errc() || p < 1 || p > 65535) {
      return InvalidArgumentError(StrCat("invalid port \"", Excerpt(port_text), "\""));
    }
    if (port) *port = p;
  }
  if (!view.empty() && view[0] == '[') {
    Ipv6 address{};
    if (!ParseIpv6(view.substr(1, view.size() - 2), address)) {
      return InvalidArgumentError("invalid IPv6 literal");
    }
    if (EmbedsIpv4(address)) {
      return InvalidArgumentError(
          "IPv6 literal embeds an IPv4 address (IPv4-mapped, -compatible or NAT64); use the "
          "IPv4 address");
    }
    return FormatIpv6(address);
  }

  if (!view.empty() && view.back() == '.') view.remove_suffix(1);
  if (view.empty()) return InvalidArgumentError("empty host");
  if (view.size() > 253) return InvalidArgumentError("host name longer than 253 bytes");
  size_t pos = 0;
  while (true) {
    size_t end = view.find('.', pos);
    std::string_view label = view.substr(pos, end == std::string_view::npos ? end : end - pos);
    if (label.empty()) return InvalidArgumentError("host has an empty label");
    if (label.size() > 63) return InvalidArgumentError("host label longer than 63 bytes");
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      if (!ok) return InvalidArgumentError(StrCat("host contains '", c, "'"));
    }
    if (label.substr(0, 4) == "xn--") {
      if (Status s = CheckIdnaLabel(label); !s.ok()) return s;
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  if (EndsInNumber(view) && !ParseCanonicalDottedQuad(view)) {
    return InvalidArgumentError(
        "host ends in a number but is not a canonical dotted-quad IPv4 address (ambiguous "
        "encoding)");
  }
  return std::string(view);
}

}  // namespace aegis::common
