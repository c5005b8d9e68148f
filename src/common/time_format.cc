#include "common/time_format.h"

#include <cstdio>

namespace keygate {
namespace {

constexpr int64_t kMsPerSecond = 1000;
constexpr int64_t kSecondsPerDay = 86400;

Error BadTime(std::string_view param) {
  return Error::InvalidArgument(std::string(param) +
                                    " must be an ISO 8601 timestamp such as 2025-03-28T18:30:00Z",
                                std::string(param));
}

// Reads exactly `n` digits at `pos`; false if any is not a digit.
bool ReadDigits(std::string_view s, size_t pos, size_t n, int64_t* out) {
  if (pos + n > s.size()) return false;
  int64_t v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool IsLeap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned DaysInMonth(int64_t y, unsigned m) {
  static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeap(y) ? 29 : kDays[m - 1];
}

}  // namespace

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* year, unsigned* month, unsigned* day) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *day = doy - (153 * mp + 2) / 5 + 1;
  *month = mp < 10 ? mp + 3 : mp - 9;
  *year = static_cast<int64_t>(yoe) + era * 400 + (*month <= 2);
}

Result<UnixMillis> ParseTimestamp(std::string_view s, std::string_view param,
                                  TimestampStrictness strictness) {
  int64_t year, month, day, hour, minute, second;
  if (!ReadDigits(s, 0, 4, &year) || s.size() < 19 || s[4] != '-' || !ReadDigits(s, 5, 2, &month) ||
      s[7] != '-' || !ReadDigits(s, 8, 2, &day) || !ReadDigits(s, 11, 2, &hour) || s[13] != ':' ||
      !ReadDigits(s, 14, 2, &minute) || s[16] != ':' || !ReadDigits(s, 17, 2, &second)) {
    return BadTime(param);
  }
  const bool t_separator = s[10] == 'T' || s[10] == 't';
  if (!t_separator && (s[10] != ' ' || strictness == TimestampStrictness::kRfc3339Utc)) {
    return BadTime(param);
  }
  if (year < 1970 || month < 1 || month > 12 || day < 1 ||
      day > DaysInMonth(year, static_cast<unsigned>(month)) || hour > 23 || minute > 59 ||
      second > 59) {
    return BadTime(param);
  }
  size_t pos = 19;
  int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    size_t n = pos - start;
    if (n == 0 || n > 9) return BadTime(param);
    int64_t frac = 0;
    ReadDigits(s, start, n < 3 ? n : 3, &frac);
    for (size_t i = n; i < 3; ++i) frac *= 10;
    millis = frac;
  }
  int64_t offset_minutes = 0;
  if (pos == s.size()) {
    // No zone: UTC for the space form only. An ISO "T" form without a zone is ambiguous (local
    // time to ISO 8601) and outside the spec's grammar; OpenRouter's form needs a Z anyway.
    if (t_separator || strictness == TimestampStrictness::kRfc3339Utc) return BadTime(param);
  } else if ((s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size()) {
  } else if ((s[pos] == '+' || s[pos] == '-') && pos + 6 == s.size() && s[pos + 3] == ':' &&
             strictness == TimestampStrictness::kLenient) {
    int64_t oh, om;
    if (!ReadDigits(s, pos + 1, 2, &oh) || !ReadDigits(s, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return BadTime(param);
    }
    offset_minutes = (oh * 60 + om) * (s[pos] == '+' ? 1 : -1);
  } else {
    return BadTime(param);
  }
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t secs = days * kSecondsPerDay + hour * 3600 + minute * 60 + second - offset_minutes * 60;
  // An offset can carry 9999-12-31 past the year's end in UTC, where keygate writes every
  // instant, with four digits of year (RFC 3339): such an instant could not be written back.
  const int64_t first_of_10000 = DaysFromCivil(10000, 1, 1) * kSecondsPerDay;
  if (secs >= first_of_10000) {
    return Error::InvalidArgument(std::string(param) + " must be before 10000-01-01T00:00:00Z",
                                  std::string(param));
  }
  return secs * kMsPerSecond + millis;
}

std::string FormatTimestamp(UnixMillis ms) {
  int64_t secs = ms >= 0 ? ms / kMsPerSecond : (ms - (kMsPerSecond - 1)) / kMsPerSecond;
  int64_t millis = ms - secs * kMsPerSecond;
  int64_t days = secs >= 0 ? secs / kSecondsPerDay : (secs - (kSecondsPerDay - 1)) / kSecondsPerDay;
  int64_t rem = secs - days * kSecondsPerDay;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  char buf[64];  // room for any int64 year (the compiler's bound), though instants end in 9999
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<long long>(y), m, d, static_cast<long long>(rem / 3600),
                static_cast<long long>(rem / 60 % 60), static_cast<long long>(rem % 60),
                static_cast<long long>(millis));
  return buf;
}

}  // namespace keygate
