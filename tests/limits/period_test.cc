#include "limits/period.h"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>

#include "common/time_format.h"

namespace keygate::limits {
namespace {

using keys::ResetInterval;

constexpr int64_t kMsPerHour = 3'600'000;
constexpr int64_t kMsPerMinute = 60'000;
constexpr int64_t kMsPerSecond = 1'000;

// An instant from a UTC civil date and time.
UnixMillis At(int64_t year, unsigned month, unsigned day, int64_t hour = 0, int64_t minute = 0,
              int64_t second = 0, int64_t ms = 0) {
  return DaysFromCivil(year, month, day) * kMsPerDay + hour * kMsPerHour + minute * kMsPerMinute +
         second * kMsPerSecond + ms;
}

struct PeriodCase {
  std::string name;
  ResetInterval interval;
  UnixMillis now;
  UnixMillis start;
  std::optional<UnixMillis> next;
};

// Names the case in gtest's output instead of dumping its bytes.
void PrintTo(const PeriodCase& c, std::ostream* os) { *os << c.name; }

class PeriodTableTest : public ::testing::TestWithParam<PeriodCase> {};

TEST_P(PeriodTableTest, StartAndNextResetMatchTheCalendar) {
  const PeriodCase& c = GetParam();
  EXPECT_EQ(PeriodStart(c.interval, c.now), c.start) << FormatTimestamp(c.now);
  EXPECT_EQ(NextReset(c.interval, c.now), c.next) << FormatTimestamp(c.now);
}

INSTANTIATE_TEST_SUITE_P(
    Calendar, PeriodTableTest,
    ::testing::Values(
        PeriodCase{"DailyMidDay", ResetInterval::kDaily, At(2024, 3, 15, 13, 45, 10, 123),
                   At(2024, 3, 15), At(2024, 3, 16)},
        PeriodCase{"DailyExactlyAtMidnight", ResetInterval::kDaily, At(2024, 3, 15),
                   At(2024, 3, 15), At(2024, 3, 16)},
        PeriodCase{"DailyLastMillisecond", ResetInterval::kDaily, At(2024, 3, 15, 23, 59, 59, 999),
                   At(2024, 3, 15), At(2024, 3, 16)},
        PeriodCase{"DailyLeapDay", ResetInterval::kDaily, At(2024, 2, 29, 8), At(2024, 2, 29),
                   At(2024, 3, 1)},
        PeriodCase{"DailyYearEnd", ResetInterval::kDaily, At(2024, 12, 31, 23, 59, 59, 999),
                   At(2024, 12, 31), At(2025, 1, 1)},
        PeriodCase{"DailyNewYear", ResetInterval::kDaily, At(2025, 1, 1), At(2025, 1, 1),
                   At(2025, 1, 2)},
        PeriodCase{"WeeklyMondayMidnight", ResetInterval::kWeekly, At(2024, 3, 11), At(2024, 3, 11),
                   At(2024, 3, 18)},
        PeriodCase{"WeeklyMidWeek", ResetInterval::kWeekly, At(2024, 3, 13, 12), At(2024, 3, 11),
                   At(2024, 3, 18)},
        PeriodCase{"WeeklySundayLastMillisecond", ResetInterval::kWeekly,
                   At(2024, 3, 17, 23, 59, 59, 999), At(2024, 3, 11), At(2024, 3, 18)},
        PeriodCase{"WeeklyAcrossYearEnd", ResetInterval::kWeekly, At(2024, 12, 31, 23, 59, 59, 999),
                   At(2024, 12, 30), At(2025, 1, 6)},
        PeriodCase{"WeeklyAcrossLeapDay", ResetInterval::kWeekly, At(2024, 2, 29), At(2024, 2, 26),
                   At(2024, 3, 4)},
        PeriodCase{"MonthlyMidMonth", ResetInterval::kMonthly, At(2024, 3, 15, 9), At(2024, 3, 1),
                   At(2024, 4, 1)},
        PeriodCase{"MonthlyExactlyOnFirst", ResetInterval::kMonthly, At(2024, 3, 1), At(2024, 3, 1),
                   At(2024, 4, 1)},
        PeriodCase{"MonthlyLeapDay", ResetInterval::kMonthly, At(2024, 2, 29, 23, 59, 59, 999),
                   At(2024, 2, 1), At(2024, 3, 1)},
        PeriodCase{"MonthlyFebruaryOfCommonYear", ResetInterval::kMonthly,
                   At(2023, 2, 28, 23, 59, 59, 999), At(2023, 2, 1), At(2023, 3, 1)},
        PeriodCase{"MonthlyYearEnd", ResetInterval::kMonthly, At(2024, 12, 31, 23, 59, 59, 999),
                   At(2024, 12, 1), At(2025, 1, 1)},
        PeriodCase{"MonthlyNewYear", ResetInterval::kMonthly, At(2025, 1, 1), At(2025, 1, 1),
                   At(2025, 2, 1)},
        PeriodCase{"NeverStartsAtEpoch", ResetInterval::kNever, At(2024, 3, 15), 0, std::nullopt},
        PeriodCase{"WeeklyAtEpochThursday", ResetInterval::kWeekly, 0, At(1969, 12, 29),
                   At(1970, 1, 5)},
        PeriodCase{"DailyBeforeEpoch", ResetInterval::kDaily, -1, At(1969, 12, 31), 0},
        PeriodCase{"KnownInstant", ResetInterval::kDaily, 1'700'000'000'000, 1'699'920'000'000,
                   1'700'006'400'000}),
    [](const ::testing::TestParamInfo<PeriodCase>& info) { return info.param.name; });

TEST(PeriodTest, DayIndexFloorsAtMidnight) {
  EXPECT_EQ(DayIndex(0), 0);
  EXPECT_EQ(DayIndex(kMsPerDay - 1), 0);
  EXPECT_EQ(DayIndex(kMsPerDay), 1);
  EXPECT_EQ(DayIndex(-1), -1);
  EXPECT_EQ(DayIndex(-kMsPerDay), -1);
  EXPECT_EQ(DayIndex(-kMsPerDay - 1), -2);
  EXPECT_EQ(DayIndex(At(2024, 2, 29, 12)), DaysFromCivil(2024, 2, 29));
}

TEST(PeriodTest, DayStartIsMidnightOfThatDay) {
  EXPECT_EQ(DayStartMs(0), 0);
  EXPECT_EQ(DayStartMs(DaysFromCivil(2024, 1, 1)), 1'704'067'200'000);
  EXPECT_EQ(DayStartMs(-1), -kMsPerDay);
}

TEST(PeriodTest, WeekStartsOnMonday) {
  // 1970-01-01 was a Thursday; 2024-01-01 a Monday.
  EXPECT_EQ(WeekStartDay(0), -3);
  EXPECT_EQ(WeekStartDay(-3), -3);
  EXPECT_EQ(WeekStartDay(-4), -10);
  EXPECT_EQ(WeekStartDay(3), -3);
  EXPECT_EQ(WeekStartDay(4), 4);
  const int64_t monday = DaysFromCivil(2024, 1, 1);
  for (int64_t offset = 0; offset < kDaysPerWeek; ++offset) {
    EXPECT_EQ(WeekStartDay(monday + offset), monday) << offset;
  }
  EXPECT_EQ(WeekStartDay(monday - 1), monday - kDaysPerWeek);
}

TEST(PeriodTest, MonthStartsOnTheFirst) {
  EXPECT_EQ(MonthStartDay(DaysFromCivil(2024, 2, 29)), DaysFromCivil(2024, 2, 1));
  EXPECT_EQ(MonthStartDay(DaysFromCivil(2024, 3, 1)), DaysFromCivil(2024, 3, 1));
  EXPECT_EQ(MonthStartDay(DaysFromCivil(2024, 12, 31)), DaysFromCivil(2024, 12, 1));
  EXPECT_EQ(MonthStartDay(0), 0);
  EXPECT_EQ(MonthStartDay(-1), DaysFromCivil(1969, 12, 1));
}

// Every instant belongs to exactly one period: start <= now < next, and the next period
// starts where this one ends. Checked around every midnight of five years (leap year included).
TEST(PeriodTest, PeriodsTileTheTimeline) {
  const int64_t first_day = DaysFromCivil(2023, 1, 1);
  const int64_t last_day = DaysFromCivil(2028, 1, 1);
  for (ResetInterval interval :
       {ResetInterval::kDaily, ResetInterval::kWeekly, ResetInterval::kMonthly}) {
    for (int64_t day = first_day; day < last_day; ++day) {
      for (UnixMillis now :
           {DayStartMs(day), DayStartMs(day) + kMsPerDay / 2, DayStartMs(day + 1) - 1}) {
        const UnixMillis start = PeriodStart(interval, now);
        const std::optional<UnixMillis> next = NextReset(interval, now);
        ASSERT_TRUE(next.has_value());
        ASSERT_LE(start, now);
        ASSERT_LT(now, *next);
        ASSERT_EQ(PeriodStart(interval, *next), *next);
        ASSERT_EQ(PeriodStart(interval, *next - 1), start);
        ASSERT_EQ(start % kMsPerDay, 0);
      }
    }
  }
}

}  // namespace
}  // namespace keygate::limits
