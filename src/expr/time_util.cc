#include "expr/time_util.h"

#include <limits>

namespace aegis::expr::internal {

namespace {

constexpr int64_t kNanosPerSecond = 1000000000;

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, int* m, int* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int64_t y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

// Appends the fraction of a second without trailing zeros, with its dot; nothing if zero.
void AppendFraction(std::string& out, int64_t nanos) {
  if (nanos == 0) return;
  char buf[10];
  for (int i = 8; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + nanos % 10);
    nanos /= 10;
  }
  int len = 9;
  while (len > 0 && buf[len - 1] == '0') --len;
  out += '.';
  out.append(buf, len);
}

void AppendPadded(std::string& out, int64_t v, int width) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()); i < width; ++i) out += '0';
  out += s;
}

}  // namespace

bool ParseZoneOffset(std::string_view text, int64_t* offset_seconds) {
  if (text == "UTC" || text == "Z" || text == "utc") {
    *offset_seconds = 0;
    return true;
  }
  if (text.size() < 5 || (text[0] != '+' && text[0] != '-')) return false;
  int h, m;
  if (!Digits(text, 1, 2, &h)) return false;
  size_t mpos = text[3] == ':' ? 4 : 3;
  if (mpos + 2 != text.size() || !Digits(text, mpos, 2, &m)) return false;
  if (h > 23 || m > 59) return false;
  *offset_seconds = (text[0] == '-' ? -1 : 1) * (h * 3600 + m * 60);
  return true;
}

bool ParseTimestamp(std::string_view s, int64_t* unix_nanos) {
  int year, month, day, hour, minute, second;
  if (!Digits(s, 0, 4, &year) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, &month) ||
      s[7] != '-' || !Digits(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't') ||
      !Digits(s, 11, 2, &hour) || s[13] != ':' || !Digits(s, 14, 2, &minute) || s[16] != ':' ||
      !Digits(s, 17, 2, &second)) {
    return false;
  }
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) ||
      hour > 23 || minute > 59 || second > 59) {
    return false;
  }
  size_t pos = 19;
  int64_t nanos = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (digits < 9) nanos = nanos * 10 + (s[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return false;
    for (int i = digits; i < 9; ++i) nanos *= 10;
  }
  int64_t offset = 0;
  std::string_view zone = s.substr(pos);
  if (zone == "z") zone = "Z";
  if (zone != "Z") {
    if (zone.size() != 6 || zone[3] != ':' || !ParseZoneOffset(zone, &offset)) return false;
  }
  int64_t days = DaysFromCivil(year, month, day);
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset;
  // int64 nanoseconds cover 1677-09-21 to 2262-04-11.
  if (secs < -9223372036 || secs > 9223372035) return false;
  *unix_nanos = secs * kNanosPerSecond + nanos;
  return true;
}

CivilTime ToCivil(int64_t unix_nanos, int64_t offset_seconds) {
  int64_t secs = unix_nanos / kNanosPerSecond;
  int64_t nanos = unix_nanos % kNanosPerSecond;
  if (nanos < 0) {
    nanos += kNanosPerSecond;
    --secs;
  }
  secs += offset_seconds;
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  CivilTime c{};
  CivilFromDays(days, &c.year, &c.month, &c.day);
  c.hour = static_cast<int>(rem / 3600);
  c.minute = static_cast<int>(rem / 60 % 60);
  c.second = static_cast<int>(rem % 60);
  c.day_of_week = static_cast<int>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday
  c.day_of_year = static_cast<int>(days - DaysFromCivil(c.year, 1, 1));
  c.nanos = nanos;
  return c;
}

void AppendTimestamp(std::string& out, int64_t unix_nanos) {
  CivilTime c = ToCivil(unix_nanos, 0);
  AppendPadded(out, c.year, 4);
  out += '-';
  AppendPadded(out, c.month, 2);
  out += '-';
  AppendPadded(out, c.day, 2);
  out += 'T';
  AppendPadded(out, c.hour, 2);
  out += ':';
  AppendPadded(out, c.minute, 2);
  out += ':';
  AppendPadded(out, c.second, 2);
  AppendFraction(out, c.nanos);
  out += 'Z';
}

bool ParseDuration(std::string_view s, int64_t* nanos) {
  bool negative = false;
  size_t pos = 0;
  if (pos < s.size() && (s[pos] == '-' || s[pos] == '+')) {
    negative = s[pos] == '-';
    ++pos;
  }
  if (s.substr(pos) == "0") {
    *nanos = 0;
    return true;
  }
  if (pos == s.size()) return false;
  // Accumulate as unsigned 128-bit-ish via checks against the int64 range.
  constexpr uint64_t kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1;
  uint64_t total = 0;
  while (pos < s.size()) {
    uint64_t whole = 0;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (whole > (kMax - 9) / 10) return false;
      whole = whole * 10 + static_cast<uint64_t>(s[pos] - '0');
      ++pos;
    }
    bool had_whole = pos > start;
    uint64_t frac = 0, frac_scale = 1;
    if (pos < s.size() && s[pos] == '.') {
      ++pos;
      size_t fstart = pos;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        if (frac_scale < 1000000000000000000ULL) {
          frac = frac * 10 + static_cast<uint64_t>(s[pos] - '0');
          frac_scale *= 10;
        }
        ++pos;
      }
      if (pos == fstart && !had_whole) return false;
    } else if (!had_whole) {
      return false;
    }
    uint64_t unit;
    std::string_view rest = s.substr(pos);
    size_t ulen;
    if (rest.starts_with("ns")) {
      unit = 1, ulen = 2;
    } else if (rest.starts_with("us")) {
      unit = 1000, ulen = 2;
    } else if (rest.starts_with("\xC2\xB5s")) {
      unit = 1000, ulen = 3;
    } else if (rest.starts_with("ms")) {
      unit = 1000000, ulen = 2;
    } else if (rest.starts_with("s")) {
      unit = kNanosPerSecond, ulen = 1;
    } else if (rest.starts_with("m")) {
      unit = 60 * kNanosPerSecond, ulen = 1;
    } else if (rest.starts_with("h")) {
      unit = 3600 * kNanosPerSecond, ulen = 1;
    } else {
      return false;
    }
    pos += ulen;
    if (whole > kMax / unit) return false;
    uint64_t v = whole * unit;
    // frac / frac_scale * unit, computed without overflow using long double.
    v += static_cast<uint64_t>(static_cast<long double>(frac) * unit / frac_scale);
    if (v > kMax || total > kMax - v) return false;
    total += v;
  }
  if (!negative && total == kMax) return false;
  *nanos = negative ? static_cast<int64_t>(0 - total) : static_cast<int64_t>(total);
  return true;
}

void AppendDuration(std::string& out, int64_t nanos) {
  uint64_t mag = nanos < 0 ? 0 - static_cast<uint64_t>(nanos) : static_cast<uint64_t>(nanos);
  if (nanos < 0) out += '-';
  out += std::to_string(mag / kNanosPerSecond);
  AppendFraction(out, static_cast<int64_t>(mag % kNanosPerSecond));
  out += 's';
}

}  // namespace aegis::expr::internal
