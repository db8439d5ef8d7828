// Timestamps and durations for the condition language: RFC 3339 and Go-style duration text, and
// UTC calendar fields. Both are int64 nanoseconds, so the representable range is roughly the
// years 1678 to 2261 (docs/conditions.md).
#ifndef AEGIS_EXPR_TIME_UTIL_H_
#define AEGIS_EXPR_TIME_UTIL_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace aegis::expr::internal {

// Parses "2024-05-01T12:00:00Z" / "...T12:00:00.5+02:00". Returns false on bad text or range.
bool ParseTimestamp(std::string_view text, int64_t* unix_nanos);
// RFC 3339 in UTC with the shortest exact fraction: "2024-05-01T12:00:00.5Z".
void AppendTimestamp(std::string& out, int64_t unix_nanos);

// Parses "1h30m", "-1.5s", "250ms", "10us", "3ns". Returns false on bad text or overflow.
bool ParseDuration(std::string_view text, int64_t* nanos);
// Seconds with the shortest exact fraction and an "s": "5400s", "0.25s".
void AppendDuration(std::string& out, int64_t nanos);

// Parses a time zone argument: "UTC", "Z", "+02:00", "-0530". Returns the offset in seconds.
bool ParseZoneOffset(std::string_view text, int64_t* offset_seconds);

struct CivilTime {
  int64_t year;
  int month;        // 1-12
  int day;          // 1-31
  int hour, minute, second;
  int day_of_week;  // 0 = Sunday
  int day_of_year;  // 0-based
  int64_t nanos;    // within the second
};
CivilTime ToCivil(int64_t unix_nanos, int64_t offset_seconds);

}  // namespace aegis::expr::internal

#endif  // AEGIS_EXPR_TIME_UTIL_H_
