#include "limits/request_bucket.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

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
  // Time older than seen already fills nothing, and time resumes from the newest seen.
  EXPECT_EQ(bucket.TryTake(kStart - 60'000), 1);
  EXPECT_EQ(bucket.TryTake(kStart + 1), 0);
  // Idle far longer than any product of the rate and the time fits in 64 bits.
  const UnixMillis far = std::numeric_limits<int64_t>::max() / 2;
  int admitted = 0;
  while (bucket.TryTake(far) == 0) ++admitted;
  EXPECT_EQ(admitted, 1'000'000);
}

TEST(OrgRequestLimiterTest, EachOrganizationAndKindOfCallerHasItsOwnBucket) {
  testing::ManualClock clock(kStart);
  OrgRequestLimiter limiter(/*per_second=*/1, /*burst=*/2, clock);
  constexpr auto kPk = CallerClass::kProvisioningKey;
  EXPECT_EQ(limiter.TryTake("org-a", kPk).wait_ms, 0);
  EXPECT_EQ(limiter.TryTake("org-a", kPk).wait_ms, 0);
  EXPECT_EQ(limiter.TryTake("org-a", kPk).wait_ms, 1000);
  // The org's owners and service keys, and another org, draw from buckets of their own.
  for (const CallerClass other : {CallerClass::kOwner, CallerClass::kServiceKey}) {
    EXPECT_EQ(limiter.TryTake("org-a", other).wait_ms, 0);
    EXPECT_EQ(limiter.TryTake("org-a", other).wait_ms, 0);
    EXPECT_EQ(limiter.TryTake("org-a", other).wait_ms, 1000);
  }
  EXPECT_EQ(limiter.TryTake("org-b", kPk).wait_ms, 0);
  EXPECT_EQ(limiter.TryTake("org-b", kPk).wait_ms, 0);
  clock.AdvanceMs(400);
  EXPECT_EQ(limiter.TryTake("org-a", kPk).wait_ms, 600);
  clock.AdvanceMs(600);
  EXPECT_EQ(limiter.TryTake("org-a", kPk).wait_ms, 0);
  EXPECT_EQ(limiter.per_second(), 1);
  EXPECT_EQ(limiter.burst(), 2);
}

// The review: on the wall clock, a step back of an hour refilled nothing for an hour. The
// limiter reads the monotonic clock.
TEST(OrgRequestLimiterTest, AWallClockSteppedBackChangesNothing) {
  testing::ManualClock clock(kStart);
  OrgRequestLimiter limiter(/*per_second=*/1, /*burst=*/1, clock);
  EXPECT_EQ(limiter.TryTake("org-a", CallerClass::kOwner).wait_ms, 0);
  clock.SetMs(kStart - 3'600'000);
  clock.AdvanceMs(1000);
  EXPECT_EQ(limiter.TryTake("org-a", CallerClass::kOwner).wait_ms, 0);
}

// A refusal is worth a log line at most once a minute per bucket, counting those in between.
TEST(OrgRequestLimiterTest, RefusalsAreToldToTheLogOnceAMinute) {
  testing::ManualClock clock(kStart);
  OrgRequestLimiter limiter(/*per_second=*/1, /*burst=*/1, clock);
  constexpr auto kPk = CallerClass::kProvisioningKey;
  EXPECT_EQ(limiter.TryTake("org-a", kPk).refused_to_log, 0);  // admitted
  EXPECT_EQ(limiter.TryTake("org-a", kPk).refused_to_log, 1);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(limiter.TryTake("org-a", kPk).refused_to_log, 0);
  EXPECT_EQ(limiter.TryTake("org-a", CallerClass::kOwner).refused_to_log, 0);  // admitted
  EXPECT_EQ(limiter.TryTake("org-a", CallerClass::kOwner).refused_to_log, 1);  // its own
  clock.AdvanceMs(OrgRequestLimiter::kLogEveryMs - 1);
  EXPECT_EQ(limiter.TryTake("org-a", kPk).wait_ms, 0);  // refilled
  EXPECT_EQ(limiter.TryTake("org-a", kPk).refused_to_log, 0);
  clock.AdvanceMs(1);
  const Pacing logged = limiter.TryTake("org-a", kPk);
  EXPECT_GT(logged.wait_ms, 0);
  EXPECT_EQ(logged.refused_to_log, 7);  // the five, the one after the refill, this one
}

TEST(OrgRequestLimiterTest, ConcurrentCallsTakeExactlyTheBurst) {
  testing::ManualClock clock(kStart);
  OrgRequestLimiter limiter(/*per_second=*/1, /*burst=*/500, clock);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (limiter.TryTake("org-a", CallerClass::kProvisioningKey).wait_ms == 0) ++admitted;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(admitted.load(), 500);
}

TEST(OrgRequestLimiterTest, ARateOfZeroAdmitsEverything) {
  testing::ManualClock clock(kStart);
  OrgRequestLimiter limiter(/*per_second=*/0, /*burst=*/1, clock);
  for (int i = 0; i < 10'000; ++i) {
    ASSERT_EQ(limiter.TryTake("org-a", CallerClass::kOwner).wait_ms, 0) << i;
  }
}

}  // namespace
}  // namespace keygate::limits
