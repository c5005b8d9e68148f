#include "common/money.h"

#include <limits>

#include <gtest/gtest.h>

namespace keygate {
namespace {

TEST(MoneyTest, ParsesDecimalStringsExactly) {
  EXPECT_EQ(*ParseUsd("150", "x"), 150'000'000);
  EXPECT_EQ(*ParseUsd("0.25", "x"), 250'000);
  EXPECT_EQ(*ParseUsd("0.000001", "x"), 1);
  EXPECT_EQ(*ParseUsd("12.", "x"), 12'000'000);
  EXPECT_EQ(*ParseUsd(".5", "x"), 500'000);
}

TEST(MoneyTest, RefusesMalformedNegativeAndOverPreciseAmounts) {
  for (const char* bad : {"", "-1", "1e", "e5", "1e+", "1e2.5", "1ee2", ".e3", "abc", "1.2.3",
                          "0.0000001", ".", "1,5", "-1e-6"}) {
    auto r = ParseUsd(bad, "credit_limit");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().param, "credit_limit");
  }
  EXPECT_FALSE(ParseUsd("99999999999999999999", "x").ok());
}

// An amount written as a string and as a JSON number.
struct Amount {
  const char* text;
  double number;
};

// The same verdict for both forms: the same micro-dollars, or the same refusal.
void ExpectSameVerdict(const char* text, double number) {
  const Result<MicroUsd> from_text = ParseUsd(text, "limit");
  const Result<MicroUsd> from_number = UsdFromDouble(number, "limit");
  ASSERT_EQ(from_text.ok(), from_number.ok()) << text;
  if (from_text.ok()) {
    EXPECT_EQ(*from_text, *from_number) << text;
  } else {
    EXPECT_EQ(from_text.error().message, from_number.error().message) << text;
  }
}

// Audit I: the same amount as a string and as a JSON number gets the same verdict.
TEST(MoneyTest, AStringIsJudgedAsTheSameAmountSentAsANumber) {
  for (const Amount& a : {Amount{"1.0000000", 1.0000000}, Amount{"0.30000000000000004", 0.1 + 0.2},
                          Amount{"0.29999999999999999", 0.29999999999999999},
                          Amount{"19.990000000", 19.99}, Amount{"0.0000001", 0.0000001},
                          Amount{"1.1234567", 1.1234567}, Amount{"0.00000049", 0.00000049},
                          Amount{"1.0000000001", 1.0000000001}}) {
    ExpectSameVerdict(a.text, a.number);
  }
  EXPECT_EQ(*ParseUsd("1.0000000", "x"), 1'000'000);
  EXPECT_EQ(*ParseUsd("0.30000000000000004", "x"), 300'000);
  EXPECT_EQ(*ParseUsd("0.29999999999999999", "x"), 300'000);
  EXPECT_EQ(*ParseUsd("0.000001000", "x"), 1);
  // Past what a double holds to the micro-dollar, a string stays exact (review, 2026-12-07).
  for (const char* big : {"1000000000.0000003", "4000000000.0000001", "5000000000.1234561",
                          "999999999999.9999995"}) {
    EXPECT_FALSE(ParseUsd(big, "x").ok()) << big;
  }
  EXPECT_EQ(*ParseUsd("5000000000.1234560000", "x"), 5'000'000'000'123'456);
  EXPECT_EQ(*ParseUsd("0.9999999999999999", "x"), 1'000'000);
}

// Audit K: the exponent form a client's number-to-string gives (Python's str(0.00005) is
// "5e-05"), and "-0", read as the same number.
TEST(MoneyTest, AStringInExponentFormIsTheNumberItWrites) {
  for (const Amount& a : {Amount{"1e-6", 1e-6}, Amount{"5e-05", 5e-05}, Amount{"1e12", 1e12},
                          Amount{"1E12", 1e12}, Amount{"1e0", 1e0}, Amount{"1.0e+0", 1.0},
                          Amount{"10E-1", 10e-1}, Amount{"1.5e-7", 1.5e-7},
                          Amount{"1.2345678e2", 1.2345678e2}, Amount{"2e13", 2e13},
                          Amount{"0e500", 0}, Amount{"-0", 0}}) {
    ExpectSameVerdict(a.text, a.number);
  }
  EXPECT_EQ(*ParseUsd("5e-05", "x"), 50);
  EXPECT_EQ(*ParseUsd("-0.000", "x"), 0);
  EXPECT_FALSE(ParseUsd("1e400", "x").ok());
  EXPECT_FALSE(ParseUsd("1e99999999999", "x").ok());
  // A double that small is 0; the string says it is not, and is too precise to be a limit.
  EXPECT_FALSE(ParseUsd("1e-500", "x").ok());
  EXPECT_FALSE(ParseUsd("1e-99999999999", "x").ok());
  // The point moved by the whole exponent, whatever the mantissa's length (review).
  EXPECT_FALSE(ParseUsd("1" + std::string(410, '0') + "e-1000", "x").ok());
  EXPECT_EQ(*ParseUsd("0." + std::string(405, '0') + "1e+410", "x"), 10'000'000'000);
  EXPECT_EQ(*ParseUsd("00012.5e-1", "x"), 1'250'000);
  EXPECT_EQ(*ParseUsd("5.e1", "x"), 50'000'000);
  EXPECT_EQ(*ParseUsd(".5e1", "x"), 5'000'000);
  // Past a double's range, a positive amount is still not 0 (audit L).
  for (const std::string& tiny : {std::string("1e-330"), std::string("1e-400"),
                                 "0." + std::string(399, '0') + "1"}) {
    const Result<MicroUsd> read = ParseUsd(tiny, "x");
    ASSERT_FALSE(read.ok()) << tiny;
    EXPECT_NE(read.error().message.find("at most 6 decimals"), std::string::npos);
  }
  EXPECT_EQ(*ParseUsd("5." + std::string(399, '0') + "1", "x"), 5'000'000);  // noise of a $5
}

TEST(MoneyTest, DoublesAreReadToTheMicroAndNoFurther) {
  EXPECT_EQ(*UsdFromDouble(0.1, "x"), 100'000);
  EXPECT_EQ(*UsdFromDouble(150, "x"), 150'000'000);
  EXPECT_EQ(*UsdFromDouble(1.123457, "x"), 1'123'457);
  EXPECT_EQ(*UsdFromDouble(0.000001, "x"), 1);
  EXPECT_EQ(*UsdFromDouble(123456789.654321, "x"), 123'456'789'654'321);
  EXPECT_FALSE(UsdFromDouble(1e300, "x").ok());
  // As a string of the same amount is (ParseUsd): more than 6 decimals is refused, not rounded.
  EXPECT_EQ(*UsdFromDouble(0.3, "x"), 300'000);
  EXPECT_EQ(*UsdFromDouble(19.99, "x"), 19'990'000);
  EXPECT_EQ(*UsdFromDouble(1234567.891011, "x"), 1'234'567'891'011);
  EXPECT_EQ(*UsdFromDouble(0, "x"), 0);
  for (double usd : {1.1234567, 0.0000001, 0.00000049, 1e-10, 1.0000000001, 200000000.0000001}) {
    Result<MicroUsd> r = UsdFromDouble(usd, "limit");
    ASSERT_FALSE(r.ok()) << usd;
    EXPECT_NE(r.error().message.find("at most 6 decimals"), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().param, "limit");
  }
}

TEST(MoneyTest, FormatsWithoutTrailingZeros) {
  EXPECT_EQ(FormatUsd(150'000'000), "150");
  EXPECT_EQ(FormatUsd(123), "0.000123");
  EXPECT_EQ(FormatUsd(42'500'000), "42.5");
  EXPECT_EQ(FormatUsd(0), "0");
  EXPECT_EQ(FormatUsd(-1'500'000), "-1.5");
}

TEST(MoneyTest, TokenCostRoundsUpSoReservationsNeverUnderstate) {
  // 0.15 USD per Mtok = 150000 micro-USD per Mtok; 1 token costs 0.15 micro-USD → 1.
  EXPECT_EQ(CostForTokens(1, 150'000, 0, 0), 1);
  EXPECT_EQ(CostForTokens(1'000'000, 150'000, 0, 0), 150'000);
  EXPECT_EQ(CostForTokens(0, 150'000, 0, 0), 0);
  EXPECT_EQ(CostForTokens(0, 0, 3, 1'000'000), 3);
}

// Audit R: rounding each part up charged 6 micro-dollars for 4.67 (7 tokens at $0.333333/M and
// 3 at $0.777777/M); the spec's formula sums, then rounds once.
TEST(MoneyTest, ACallsCostIsSummedThenRoundedUpOnce) {
  EXPECT_EQ(CostForTokens(7, 333'333, 3, 777'777), 5);
  EXPECT_EQ(CostForTokens(1, 150'000, 1, 600'000), 1);
  EXPECT_EQ(CostForTokens(1'000'000, 150'000, 1'000'000, 600'000), 750'000);
  EXPECT_EQ(CostForTokens(0, 150'000, 0, 600'000), 0);
  const int64_t max = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(CostForTokens(max, max, max, max), max);  // saturates
}

}  // namespace
}  // namespace keygate
