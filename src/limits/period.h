// Budget periods (spec §3 `reset_budget_interval`): pure calendar math in UTC.
//
// Periods start at 00:00 UTC: a daily period on each day, a weekly period on Monday, a monthly
// period on the 1st. A key whose interval is kNever has one period that starts at the epoch and
// never ends. Day indexes count days since 1970-01-01 (day 0, a Thursday) and are negative
// before it; every function here floors, so instants before the epoch work too.
//
// Thread safety: pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>

#include "common/clock.h"
#include "keys/model.h"

namespace keygate::limits {

inline constexpr int64_t kMsPerDay = 86'400'000;
inline constexpr int64_t kDaysPerWeek = 7;

// Returns the index of the UTC day containing `ms` (floor of ms / kMsPerDay).
int64_t DayIndex(UnixMillis ms);

// Returns the instant at which day `day` starts (00:00:00.000 UTC).
UnixMillis DayStartMs(int64_t day);

// Returns the index of the Monday on or before `day`.
int64_t WeekStartDay(int64_t day);

// Returns the index of the 1st of the month containing `day`.
int64_t MonthStartDay(int64_t day);

// Returns the start of the budget period of `interval` that contains `now`: today 00:00 UTC
// (kDaily), this week's Monday 00:00 UTC (kWeekly), this month's 1st 00:00 UTC (kMonthly), or 0,
// the epoch (kNever). An instant exactly on a boundary belongs to the period it starts.
UnixMillis PeriodStart(keys::ResetInterval interval, UnixMillis now);

// Returns the first instant after `now` at which a new period of `interval` starts, which is
// also the exclusive end of the period containing `now`; nullopt for kNever (no reset).
std::optional<UnixMillis> NextReset(keys::ResetInterval interval, UnixMillis now);

}  // namespace keygate::limits
