#include "limits/period.h"

#include "common/time_format.h"

namespace keygate::limits {
namespace {

// Day 0 (1970-01-01) was a Thursday; with Monday as weekday 0 it is weekday 3.
constexpr int64_t kEpochWeekday = 3;

int64_t FloorDiv(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t FloorMod(int64_t a, int64_t b) { return a - FloorDiv(a, b) * b; }

// The 1st of the month after the one containing `day`.
int64_t NextMonthStartDay(int64_t day) {
  int64_t year = 0;
  unsigned month = 0;
  unsigned day_of_month = 0;
  CivilFromDays(day, &year, &month, &day_of_month);
  constexpr unsigned kDecember = 12;
  if (month == kDecember) return DaysFromCivil(year + 1, 1, 1);
  return DaysFromCivil(year, month + 1, 1);
}

}  // namespace

int64_t DayIndex(UnixMillis ms) { return FloorDiv(ms, kMsPerDay); }

UnixMillis DayStartMs(int64_t day) { return day * kMsPerDay; }

int64_t WeekStartDay(int64_t day) { return day - FloorMod(day + kEpochWeekday, kDaysPerWeek); }

int64_t MonthStartDay(int64_t day) {
  int64_t year = 0;
  unsigned month = 0;
  unsigned day_of_month = 0;
  CivilFromDays(day, &year, &month, &day_of_month);
  return DaysFromCivil(year, month, 1);
}

UnixMillis PeriodStart(keys::ResetInterval interval, UnixMillis now) {
  const int64_t today = DayIndex(now);
  switch (interval) {
    case keys::ResetInterval::kNever:
      return 0;
    case keys::ResetInterval::kDaily:
      return DayStartMs(today);
    case keys::ResetInterval::kWeekly:
      return DayStartMs(WeekStartDay(today));
    case keys::ResetInterval::kMonthly:
      return DayStartMs(MonthStartDay(today));
  }
  return 0;
}

std::optional<UnixMillis> NextReset(keys::ResetInterval interval, UnixMillis now) {
  const int64_t today = DayIndex(now);
  switch (interval) {
    case keys::ResetInterval::kNever:
      return std::nullopt;
    case keys::ResetInterval::kDaily:
      return DayStartMs(today + 1);
    case keys::ResetInterval::kWeekly:
      return DayStartMs(WeekStartDay(today) + kDaysPerWeek);
    case keys::ResetInterval::kMonthly:
      return DayStartMs(NextMonthStartDay(today));
  }
  return std::nullopt;
}

}  // namespace keygate::limits
