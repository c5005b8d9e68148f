#include "limits/budget.h"

#include <gtest/gtest.h>

#include <limits>

#include "common/time_format.h"
#include "limits/period.h"

namespace keygate::limits {
namespace {

using keys::ResetInterval;

constexpr int64_t kMsPerHour = 3'600'000;
constexpr MicroUsd kOneUsd = kMicrosPerUsd;

UnixMillis Midnight(int64_t year, unsigned month, unsigned day) {
  return DayStartMs(DaysFromCivil(year, month, day));
}

class BudgetTest : public ::testing::Test {
 protected:
  // Seeds budget_ for the period of `interval` at `now` with `stored` spend.
  void Seed(ResetInterval interval, UnixMillis now, MicroUsd stored) {
    ASSERT_FALSE(budget_.Roll(interval, now));
    ASSERT_TRUE(budget_.SeedSpend(budget_.BeginSeed(), stored));
  }

  const UnixMillis mid_march_ = Midnight(2024, 3, 15) + 12 * kMsPerHour;
  Budget budget_;
};

TEST_F(BudgetTest, UnseededBudgetAsksForASeed) {
  const BudgetDecision decision =
      budget_.TryReserve(mid_march_, 1, kOneUsd, ResetInterval::kMonthly);
  EXPECT_EQ(decision.outcome, BudgetOutcome::kUnseeded);
  EXPECT_EQ(budget_.reserved(), 0);
  const SeedRequest seed = budget_.BeginSeed();
  EXPECT_EQ(seed.period_start, Midnight(2024, 3, 1));
}

TEST_F(BudgetTest, MonthlyPeriodStartsOnFirstAtMidnightUtc) {
  Seed(ResetInterval::kMonthly, mid_march_, 0);
  EXPECT_EQ(budget_.period_start(), Midnight(2024, 3, 1));
  EXPECT_EQ(budget_.resets_at(), Midnight(2024, 4, 1));
}

TEST_F(BudgetTest, ReservesUpToTheLimitExactly) {
  Seed(ResetInterval::kMonthly, mid_march_, 0);
  EXPECT_TRUE(budget_.TryReserve(mid_march_, 600'000, kOneUsd, ResetInterval::kMonthly).reserved());
  EXPECT_TRUE(budget_.TryReserve(mid_march_, 400'000, kOneUsd, ResetInterval::kMonthly).reserved());
  const BudgetDecision refused =
      budget_.TryReserve(mid_march_, 1, kOneUsd, ResetInterval::kMonthly);
  EXPECT_EQ(refused.outcome, BudgetOutcome::kExceeded);
  EXPECT_EQ(refused.reservation.amount, 0);
  EXPECT_EQ(refused.figures.limit, kOneUsd);
  EXPECT_EQ(refused.figures.spend, 0);
  EXPECT_EQ(refused.figures.reserved, kOneUsd);
  EXPECT_EQ(refused.figures.resets_at, Midnight(2024, 4, 1));
}

TEST_F(BudgetTest, SeededSpendCountsAgainstTheLimit) {
  Seed(ResetInterval::kMonthly, mid_march_, 900'000);
  EXPECT_FALSE(
      budget_.TryReserve(mid_march_, 100'001, kOneUsd, ResetInterval::kMonthly).reserved());
  const BudgetDecision fits =
      budget_.TryReserve(mid_march_, 100'000, kOneUsd, ResetInterval::kMonthly);
  ASSERT_TRUE(fits.reserved());
  EXPECT_EQ(fits.figures.spend, 900'000);
  EXPECT_EQ(fits.figures.reserved, 100'000);
}

TEST_F(BudgetTest, SettleReplacesTheReservationWithTheRealCost) {
  Seed(ResetInterval::kMonthly, mid_march_, 250'000);
  const BudgetDecision reserved =
      budget_.TryReserve(mid_march_, 500'000, kOneUsd, ResetInterval::kMonthly);
  ASSERT_TRUE(reserved.reserved());
  budget_.Settle(reserved.reservation, 123'456, mid_march_ + 1);
  EXPECT_EQ(budget_.spend(), 373'456);
  EXPECT_EQ(budget_.reserved(), 0);
  // The 376'544 not spent is available again, to the micro-dollar.
  EXPECT_TRUE(
      budget_.TryReserve(mid_march_ + 2, 626'544, kOneUsd, ResetInterval::kMonthly).reserved());
  EXPECT_FALSE(budget_.TryReserve(mid_march_ + 2, 1, kOneUsd, ResetInterval::kMonthly).reserved());
}

TEST_F(BudgetTest, SettleAboveTheReservationChargesTheRealCost) {
  Seed(ResetInterval::kMonthly, mid_march_, 0);
  const BudgetDecision reserved =
      budget_.TryReserve(mid_march_, 100, kOneUsd, ResetInterval::kMonthly);
  budget_.Settle(reserved.reservation, 150, mid_march_);
  EXPECT_EQ(budget_.spend(), 150);
  EXPECT_EQ(budget_.reserved(), 0);
}

TEST_F(BudgetTest, ReleaseDropsTheReservationWithoutCharge) {
  Seed(ResetInterval::kMonthly, mid_march_, 10);
  const BudgetDecision reserved =
      budget_.TryReserve(mid_march_, 999'990, kOneUsd, ResetInterval::kMonthly);
  ASSERT_TRUE(reserved.reserved());
  budget_.Release(reserved.reservation);
  EXPECT_EQ(budget_.spend(), 10);
  EXPECT_EQ(budget_.reserved(), 0);
  EXPECT_TRUE(budget_.TryReserve(mid_march_, 999'990, kOneUsd, ResetInterval::kMonthly).reserved());
}

TEST_F(BudgetTest, ZeroCostFitsAtTheLimitButNotPastIt) {
  Seed(ResetInterval::kMonthly, mid_march_, kOneUsd);
  EXPECT_TRUE(budget_.TryReserve(mid_march_, 0, kOneUsd, ResetInterval::kMonthly).reserved());
  budget_.Settle({}, 1, mid_march_);
  EXPECT_FALSE(budget_.TryReserve(mid_march_, 0, kOneUsd, ResetInterval::kMonthly).reserved());
}

TEST_F(BudgetTest, ZeroLimitRefusesAnyCost) {
  Seed(ResetInterval::kNever, mid_march_, 0);
  EXPECT_FALSE(budget_.TryReserve(mid_march_, 1, 0, ResetInterval::kNever).reserved());
  EXPECT_TRUE(budget_.TryReserve(mid_march_, 0, 0, ResetInterval::kNever).reserved());
}

TEST_F(BudgetTest, DailyRolloverResetsSpendAndKeepsOpenReservations) {
  const UnixMillis last_ms = Midnight(2024, 3, 16) - 1;
  Seed(ResetInterval::kDaily, last_ms, 400'000);
  const BudgetDecision reserved =
      budget_.TryReserve(last_ms, 300'000, kOneUsd, ResetInterval::kDaily);
  ASSERT_TRUE(reserved.reserved());
  // Rolls at the boundary exactly, with no store read.
  EXPECT_TRUE(budget_.Roll(ResetInterval::kDaily, last_ms + 1));
  EXPECT_EQ(budget_.period_start(), Midnight(2024, 3, 16));
  EXPECT_EQ(budget_.resets_at(), Midnight(2024, 3, 17));
  EXPECT_EQ(budget_.spend(), 0);
  EXPECT_EQ(budget_.reserved(), 300'000);
  // Settled after midnight: charged to the new day.
  budget_.Settle(reserved.reservation, 250'000, last_ms + 2);
  EXPECT_EQ(budget_.spend(), 250'000);
  EXPECT_EQ(budget_.reserved(), 0);
}

TEST_F(BudgetTest, SettleRollsThePeriodItself) {
  const UnixMillis last_ms = Midnight(2024, 4, 1) - 1;
  Seed(ResetInterval::kMonthly, last_ms, 700'000);
  const BudgetDecision reserved =
      budget_.TryReserve(last_ms, 200'000, kOneUsd, ResetInterval::kMonthly);
  budget_.Settle(reserved.reservation, 200'000, Midnight(2024, 4, 1));
  EXPECT_EQ(budget_.period_start(), Midnight(2024, 4, 1));
  EXPECT_EQ(budget_.spend(), 200'000);
}

TEST_F(BudgetTest, ReservationsMayNotExceedTheLimitAcrossTheReset) {
  const UnixMillis last_ms = Midnight(2024, 3, 16) - 1;
  Seed(ResetInterval::kDaily, last_ms, 0);
  ASSERT_TRUE(budget_.TryReserve(last_ms, 800'000, kOneUsd, ResetInterval::kDaily).reserved());
  // The open reservation still counts in the new day.
  EXPECT_FALSE(budget_.TryReserve(last_ms + 1, 300'000, kOneUsd, ResetInterval::kDaily).reserved());
}

TEST_F(BudgetTest, StaleNowIsChargedToTheNewestPeriod) {
  Seed(ResetInterval::kDaily, Midnight(2024, 3, 16), 0);
  budget_.Settle({}, 5, Midnight(2024, 3, 16) - 10);
  EXPECT_EQ(budget_.period_start(), Midnight(2024, 3, 16));
  EXPECT_EQ(budget_.spend(), 5);
}

TEST_F(BudgetTest, SettlesDuringTheStoreReadAreKept) {
  ASSERT_FALSE(budget_.Roll(ResetInterval::kMonthly, mid_march_));
  budget_.Settle({}, 7, mid_march_);  // before the read: the store has it
  const SeedRequest seed = budget_.BeginSeed();
  budget_.Settle({}, 50'000, mid_march_ + 1);  // while the store is read
  ASSERT_TRUE(budget_.SeedSpend(seed, 200'007));
  EXPECT_EQ(budget_.spend(), 250'007);
}

TEST_F(BudgetTest, SeedForAnEarlierPeriodIsIgnored) {
  ASSERT_FALSE(budget_.Roll(ResetInterval::kDaily, mid_march_));
  const SeedRequest stale = budget_.BeginSeed();
  ASSERT_FALSE(budget_.Roll(ResetInterval::kDaily, mid_march_ + 24 * kMsPerHour));
  EXPECT_FALSE(budget_.SeedSpend(stale, 123));
  EXPECT_FALSE(budget_.seeded());
  ASSERT_TRUE(budget_.SeedSpend(budget_.BeginSeed(), 4));
  EXPECT_EQ(budget_.spend(), 4);
}

TEST_F(BudgetTest, SecondSeedIsIgnored) {
  ASSERT_FALSE(budget_.Roll(ResetInterval::kMonthly, mid_march_));
  const SeedRequest first = budget_.BeginSeed();
  const SeedRequest second = budget_.BeginSeed();
  ASSERT_TRUE(budget_.SeedSpend(first, 10));
  EXPECT_FALSE(budget_.SeedSpend(second, 99));
  EXPECT_EQ(budget_.spend(), 10);
}

TEST_F(BudgetTest, WiderIntervalNeedsANewSeed) {
  Seed(ResetInterval::kDaily, mid_march_, 100);
  EXPECT_FALSE(budget_.Roll(ResetInterval::kMonthly, mid_march_));
  EXPECT_EQ(budget_.BeginSeed().period_start, Midnight(2024, 3, 1));
}

TEST_F(BudgetTest, NarrowerIntervalWithSpendSinceItsStartNeedsANewSeed) {
  Seed(ResetInterval::kMonthly, mid_march_, 0);
  budget_.Settle({}, 100, mid_march_);
  EXPECT_FALSE(budget_.Roll(ResetInterval::kDaily, mid_march_ + 1));
  EXPECT_EQ(budget_.BeginSeed().period_start, Midnight(2024, 3, 15));
}

TEST_F(BudgetTest, NarrowerIntervalIdleSinceItsStartIsKnownToBeZero) {
  Seed(ResetInterval::kMonthly, Midnight(2024, 3, 10), 500'000);
  EXPECT_TRUE(budget_.Roll(ResetInterval::kDaily, mid_march_));
  EXPECT_EQ(budget_.spend(), 0);
  EXPECT_EQ(budget_.period_start(), Midnight(2024, 3, 15));
}

TEST_F(BudgetTest, SameStartUnderAnotherIntervalKeepsTheSpend) {
  // 2024-01-01 is a Monday and the 1st: weekly and monthly periods start together.
  Seed(ResetInterval::kMonthly, Midnight(2024, 1, 1) + 1, 42);
  EXPECT_TRUE(budget_.Roll(ResetInterval::kWeekly, Midnight(2024, 1, 1) + 2));
  EXPECT_EQ(budget_.spend(), 42);
  EXPECT_EQ(budget_.resets_at(), Midnight(2024, 1, 8));
}

TEST_F(BudgetTest, NeverResettingBudgetCountsFromTheEpoch) {
  Seed(ResetInterval::kNever, mid_march_, 3);
  EXPECT_EQ(budget_.period_start(), 0);
  EXPECT_EQ(budget_.resets_at(), std::nullopt);
  EXPECT_TRUE(budget_.Roll(ResetInterval::kNever, Midnight(2030, 1, 1)));
  EXPECT_EQ(budget_.spend(), 3);
}

TEST_F(BudgetTest, HugeAmountsSaturateInsteadOfWrapping) {
  Seed(ResetInterval::kNever, mid_march_, 0);
  const MicroUsd max = std::numeric_limits<MicroUsd>::max();
  ASSERT_TRUE(
      budget_.TryReserve(mid_march_, kMaxMicroUsd, kMaxMicroUsd, ResetInterval::kNever).reserved());
  EXPECT_FALSE(budget_.TryReserve(mid_march_, max, kMaxMicroUsd, ResetInterval::kNever).reserved());
  EXPECT_FALSE(budget_.TryReserve(mid_march_, max, max, ResetInterval::kNever).reserved());
  EXPECT_EQ(budget_.reserved(), kMaxMicroUsd);
}

TEST_F(BudgetTest, ReleasingMoreThanReservedNeverGoesNegative) {
  Seed(ResetInterval::kNever, mid_march_, 0);
  budget_.Release({5});
  EXPECT_EQ(budget_.reserved(), 0);
  EXPECT_FALSE(budget_.TryReserve(mid_march_, 11, 10, ResetInterval::kNever).reserved());
}

}  // namespace
}  // namespace keygate::limits
