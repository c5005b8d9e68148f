#include "common/time_format.h"

#include <gtest/gtest.h>

namespace keygate {
namespace {

constexpr UnixMillis k20250328T183000 = 1743186600000;

TEST(TimeFormatTest, ReadsEveryDocumentedForm) {
  EXPECT_EQ(*ParseTimestamp("2025-03-28T18:30:00Z", "t"), k20250328T183000);
  EXPECT_EQ(*ParseTimestamp("2025-03-28 18:30:00", "t"), k20250328T183000);
  EXPECT_EQ(*ParseTimestamp("2025-03-28 18:30:00.000", "t"), k20250328T183000);
  EXPECT_EQ(*ParseTimestamp("2025-03-28T18:30:00.250Z", "t"), k20250328T183000 + 250);
  EXPECT_EQ(*ParseTimestamp("2025-03-29T00:00:00+05:30", "t"), k20250328T183000);
  EXPECT_EQ(*ParseTimestamp("2025-03-28T16:30:00-02:00", "t"), k20250328T183000);
}

TEST(TimeFormatTest, RefusesImpossibleOrMalformedTimes) {
  for (const char* bad : {"", "2025-02-30T00:00:00Z", "2025-13-01T00:00:00Z", "2025-03-28",
                          "2025-03-28T24:00:00Z", "yesterday", "2025-03-28T18:30Z",
                          "2025-03-28T18:30:00+5:30", "1969-12-31T23:59:59Z",
                          "2025-03-28T18:30:00", "2025-03-28T18:30:00.250"}) {
    auto r = ParseTimestamp(bad, "expire_key");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().param, "expire_key");
  }
}

TEST(TimeFormatTest, StrictRfc3339RequiresZuluAndSeconds) {
  EXPECT_TRUE(ParseTimestamp("2025-03-28T18:30:00Z", "t", TimestampStrictness::kRfc3339Utc).ok());
  EXPECT_FALSE(ParseTimestamp("2025-03-28 18:30:00", "t", TimestampStrictness::kRfc3339Utc).ok());
  EXPECT_FALSE(ParseTimestamp("2025-03-28T18:30:00", "t", TimestampStrictness::kRfc3339Utc).ok());
  EXPECT_FALSE(
      ParseTimestamp("2025-03-28T18:30:00+01:00", "t", TimestampStrictness::kRfc3339Utc).ok());
}

TEST(TimeFormatTest, WritesIsoUtcWithMillis) {
  EXPECT_EQ(FormatTimestamp(k20250328T183000), "2025-03-28T18:30:00.000Z");
  EXPECT_EQ(FormatTimestamp(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTimestamp(951782400123), "2000-02-29T00:00:00.123Z");
}

TEST(TimeFormatTest, RoundTripsAcrossLeapYearsAndYearEnds) {
  for (UnixMillis ms : {UnixMillis{0}, UnixMillis{951782400000}, UnixMillis{1735689599999},
                        UnixMillis{4102444800000}}) {
    EXPECT_EQ(*ParseTimestamp(FormatTimestamp(ms), "t"), ms);
  }
}

// An instant keygate could not write back with four digits of year is refused (audit,
// 2026-12-07: 9999-12-31T23:59:59-01:00 was stored, and answered as 10000-01-01T00:59:59Z).
TEST(TimeFormatTest, RefusesInstantsFromTheYear10000On) {
  for (const char* text : {"9999-12-31T23:59:59-01:00", "9999-12-31T23:00:00-02:00"}) {
    auto parsed = ParseTimestamp(text, "expire_key");
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_EQ(parsed.error().param, "expire_key");
    EXPECT_NE(parsed.error().message.find("before 10000-01-01"), std::string::npos);
  }
  auto last = ParseTimestamp("9999-12-31T23:59:59.999Z", "t");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(FormatTimestamp(*last), "9999-12-31T23:59:59.999Z");
  EXPECT_TRUE(ParseTimestamp("9999-12-31T23:59:59+01:00", "t").ok());
}

}  // namespace
}  // namespace keygate
