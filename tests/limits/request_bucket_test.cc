#include "limits/request_bucket.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "testing/manual_clock.h"

namespace keygate::limits {
namespace {

constexpr UnixMillis kStart = 1'700'000'000'000;

TEST(RequestBucketTest, AFullBucketTakesItsBurstThenTellsTheWait) {
  RequestBucket bucket(/*per_second=*/100, /*burst=*/5, kStart);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(bucket.TryTake(kStart), 0) << i;
  // 100 a second: one call every 10 ms.
  EXPECT_EQ(bucket.TryTake(kStart), 10);
  EXPECT_EQ(bucket.TryTake(kStart + 9), 1);
  EXPECT_EQ(bucket.TryTake(kStart + 10), 0);
  EXPECT_EQ(bucket.TryTake(kStart + 10), 10);
}

TEST(RequestBucketTest, ItRefillsAtItsRateUpToItsBurst) {
  RequestBucket bucket(/*per_second=*/3, /*burst=*/2, kStart);
  EXPECT_EQ(bucket.TryTake(kStart), 0);
  EXPECT_EQ(bucket.TryTake(kStart), 0);
  // Three a second: a call's worth every 333.3 ms, counted in thousandths, none lost.
  EXPECT_EQ(bucket.TryTake(kStart), 334);
  EXPECT_EQ(bucket.TryTake(kStart + 333), 1);
  EXPECT_EQ(bucket.TryTake(kStart + 334), 0);
  // 333 ms later it holds 0.001 + 0.999 = 1 call again.
  EXPECT_EQ(bucket.TryTake(kStart + 667), 0);
  // Idle for a minute: full again, at its burst and no more.
  const UnixMillis later = kStart + 60'000;
  EXPECT_EQ(bucket.TryTake(later), 0);
  EXPECT_EQ(bucket.TryTake(later), 0);
  EXPECT_GT(bucket.TryTake(later), 0);
}

TEST(RequestBucketTest, YearsIdleOrAClockStepBackNeitherOverflowsNorFills) {
  RequestBucket bucket(/*per_second=*/1'000'000, /*burst=*/1'000'000, kStart);
  for (int i = 0; i < 1'000'000; ++i) ASSERT_EQ(bucket.TryTake(kStart), 0) << i;
  EXPECT_EQ(bucket.TryTake(kStart), 1);
  // The clock steps back: nothing is filled, and time resumes from the newest seen.
  EXPECT_EQ(bucket.TryTake(kStart - 60'000), 1);
  EXPECT_EQ(bucket.TryTake(kStart + 1), 0);
  // Idle far longer than any product of the rate and the time fits in 64 bits.
  const UnixMillis far = std::numeric_limits<int64_t>::max() / 2;
  int admitted = 0;
  while (bucket.TryTake(far) == 0) ++admitted;
  EXPECT_EQ(admitted, 1'000'000);
}

TEST(OrgRequestLimiterTest, EachOrganizationHasItsOwnBucket) {
  testing::ManualClock clock(kStart);
  OrgRequestLimiter limiter(/*per_second=*/1, /*burst=*/2, clock);
  EXPECT_EQ(limiter.TryTake("org-a"), 0);
  EXPECT_EQ(limiter.TryTake("org-a"), 0);
  EXPECT_EQ(limiter.TryTake("org-a"), 1000);
  EXPECT_EQ(limiter.TryTake("org-b"), 0);
  EXPECT_EQ(limiter.TryTake("org-b"), 0);
  clock.AdvanceMs(400);
  EXPECT_EQ(limiter.TryTake("org-a"), 600);
  clock.AdvanceMs(600);
  EXPECT_EQ(limiter.TryTake("org-a"), 0);
  EXPECT_EQ(limiter.per_second(), 1);
  EXPECT_EQ(limiter.burst(), 2);
}

TEST(OrgRequestLimiterTest, ARateOfZeroAdmitsEverything) {
  testing::ManualClock clock(kStart);
  OrgRequestLimiter limiter(/*per_second=*/0, /*burst=*/1, clock);
  for (int i = 0; i < 10'000; ++i) ASSERT_EQ(limiter.TryTake("org-a"), 0) << i;
}

}  // namespace
}  // namespace keygate::limits
