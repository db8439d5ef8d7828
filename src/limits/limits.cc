#include "limits/limits.h"

#include "common/strings.h"

namespace aegis::limits {

namespace {

constexpr int64_t kDayNanos = 86'400LL * 1'000'000'000;

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Days since 1970-01-01 of the first day of the month holding `days` (proleptic Gregorian),
// and of the month after (H. Hinnant's civil-from-days / days-from-civil).
void MonthBounds(int64_t days, int64_t& first, int64_t& next) {
  auto civil = [](int64_t z, int64_t& y, unsigned& m) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    auto doe = static_cast<unsigned>(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = static_cast<int64_t>(yoe) + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) ++y;
  };
  auto days_from = [](int64_t y, unsigned m) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    auto yoe = static_cast<unsigned>(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5;  // day 1 of month m
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
  };
  int64_t y;
  unsigned m;
  civil(days, y, m);
  first = days_from(y, m);
  next = m == 12 ? days_from(y + 1, 1) : days_from(y, m + 1);
}

}  // namespace

int64_t Window::Start(int64_t now) const {
  switch (kind) {
    case Kind::kDay:
      return FloorDiv(now, kDayNanos) * kDayNanos;
    case Kind::kMonth: {
      int64_t first, next;
      MonthBounds(FloorDiv(now, kDayNanos), first, next);
      return first * kDayNanos;
    }
    case Kind::kDuration:
      return duration_nanos > 0 ? FloorDiv(now, duration_nanos) * duration_nanos : 0;
  }
  return 0;
}

int64_t Window::End(int64_t now) const {
  switch (kind) {
    case Kind::kDay:
      return Start(now) + kDayNanos;
    case Kind::kMonth: {
      int64_t first, next;
      MonthBounds(FloorDiv(now, kDayNanos), first, next);
      return next * kDayNanos;
    }
    case Kind::kDuration:
      return Start(now) + duration_nanos;
  }
  return 0;
}

std::string Window::Label() const {
  switch (kind) {
    case Kind::kDay:
      return "day";
    case Kind::kMonth:
      return "month";
    case Kind::kDuration:
      return common::StrCat(duration_nanos / 1'000'000'000, "s");
  }
  return "day";
}

std::string CounterId(const Budget& b) {
  return common::StrCat(b.key, "@", b.spec.window.Label());
}

KeyParts SplitKey(std::string_view key) {
  KeyParts k;
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t slash = key.find('/', start);
    parts.push_back(key.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  k.scope = parts[0];
  if (k.scope == "tenant" && parts.size() == 2) {
    k.tenant = parts[1];
  } else if (k.scope == "agent" && parts.size() == 3) {
    k.tenant = parts[1];
    k.agent = parts[2];
  } else if (k.scope == "agent_tool" && parts.size() == 4) {
    k.tenant = parts[1];
    k.agent = parts[2];
    k.tool = parts[3];
  } else if (k.scope == "rule" && parts.size() == 4) {
    k.tenant = parts[1];
    k.rule = parts[2];
    k.agent = parts[3];
  }
  return k;
}

}  // namespace aegis::limits
