// Timestamp parsing and formatting for the wire (spec dialects.md, "Common rules").
//
// Read: ISO 8601 with `Z` or a `±HH:MM` offset ("2025-03-28T18:30:00Z",
// "2025-03-28T18:30:00.123+05:30"), or "YYYY-MM-DD HH:MM:SS[.mmm]" meaning UTC.
// Written: ISO 8601 UTC with millisecond precision and `Z`.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace keygate {

enum class TimestampStrictness {
  kLenient,  // the ISO and space-separated forms above, offsets allowed
  kRfc3339Utc,  // only "YYYY-MM-DDTHH:MM:SS[.fff]Z" (OpenRouter's `expires_at`)
};

// Returns the instant in ms since the epoch, or InvalidArgument naming `param` for any other
// shape, an impossible date (Feb 30), a year outside 1970..9999, or an instant from
// 10000-01-01T00:00:00Z on (9999-12-31T23:30:00-01:00, say).
Result<UnixMillis> ParseTimestamp(std::string_view text, std::string_view param,
                                  TimestampStrictness strictness = TimestampStrictness::kLenient);

// "2025-03-28T18:30:00.000Z".
std::string FormatTimestamp(UnixMillis ms);

// Days since 1970-01-01 for a civil date, and back (proleptic Gregorian).
int64_t DaysFromCivil(int64_t year, unsigned month, unsigned day);
void CivilFromDays(int64_t days, int64_t* year, unsigned* month, unsigned* day);

}  // namespace keygate
