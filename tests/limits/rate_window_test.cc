#include "limits/rate_window.h"

#include <gtest/gtest.h>

#include <random>
#include <utility>
#include <vector>

namespace keygate::limits {
namespace {

constexpr UnixMillis kT0 = 1'700'000'000'000;
constexpr int64_t kWindowMs = 60'000;

class RateWindowTest : public ::testing::Test {
 protected:
  RateWindow window_;
};

TEST_F(RateWindowTest, EntryLeavesExactlyWindowMsAfterItWasAdded) {
  ASSERT_TRUE(window_.TryAdd(kT0, 5, 10).admitted());
  EXPECT_EQ(window_.Used(kT0), 5);
  EXPECT_EQ(window_.Used(kT0 + kWindowMs - 1), 5);
  EXPECT_EQ(window_.Used(kT0 + kWindowMs), 0);
  EXPECT_TRUE(window_.Empty(kT0 + kWindowMs));
}

TEST_F(RateWindowTest, AdmitsUpToTheLimitAndNoMore) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(window_.TryAdd(kT0 + i, 1, 3).admitted()) << i;
  const WindowDecision refused = window_.TryAdd(kT0 + 3, 1, 3);
  EXPECT_EQ(refused.outcome, WindowOutcome::kFull);
  EXPECT_EQ(refused.entry, kNoWindowEntry);
  EXPECT_EQ(window_.Used(kT0 + 3), 3);
}

TEST_F(RateWindowTest, AmountEqualToLimitFitsAnEmptyWindow) {
  EXPECT_TRUE(window_.TryAdd(kT0, 10, 10).admitted());
  EXPECT_EQ(window_.Remaining(kT0, 10), 0);
}

TEST_F(RateWindowTest, AmountAboveLimitNeverFits) {
  const WindowDecision refused = window_.TryAdd(kT0, 11, 10);
  EXPECT_EQ(refused.outcome, WindowOutcome::kNeverFits);
  EXPECT_EQ(refused.retry_after_ms, 0);
  EXPECT_EQ(window_.FitsAfterMs(kT0, 11, 10), std::nullopt);
  EXPECT_TRUE(window_.Empty(kT0));
}

TEST_F(RateWindowTest, RetryAfterIsWhenEnoughOldEntriesHaveLeft) {
  ASSERT_TRUE(window_.TryAdd(kT0, 3, 10).admitted());
  ASSERT_TRUE(window_.TryAdd(kT0 + 10'000, 4, 10).admitted());
  ASSERT_TRUE(window_.TryAdd(kT0 + 20'000, 3, 10).admitted());
  // 5 more need 5 freed: the entry at kT0 (3) is not enough, the one at kT0 + 10 s is.
  const UnixMillis now = kT0 + 30'000;
  const WindowDecision refused = window_.TryAdd(now, 5, 10);
  ASSERT_EQ(refused.outcome, WindowOutcome::kFull);
  EXPECT_EQ(refused.retry_after_ms, 40'000);
  EXPECT_EQ(window_.FitsAfterMs(now, 5, 10), 40'000);
  EXPECT_EQ(window_.TryAdd(now + refused.retry_after_ms - 1, 5, 10).outcome, WindowOutcome::kFull);
  EXPECT_TRUE(window_.TryAdd(now + refused.retry_after_ms, 5, 10).admitted());
}

TEST_F(RateWindowTest, EntriesSharingATimestampLeaveTogether) {
  ASSERT_TRUE(window_.TryAdd(kT0, 2, 4).admitted());
  ASSERT_TRUE(window_.TryAdd(kT0, 2, 4).admitted());
  EXPECT_EQ(window_.TryAdd(kT0 + 1, 4, 4).retry_after_ms, kWindowMs - 1);
}

// Retry-After honesty on many random windows: at now + retry_after_ms the amount fits, one
// millisecond earlier it does not.
TEST_F(RateWindowTest, RetryAfterIsHonestOnRandomWindows) {
  std::mt19937_64 rng(20240229);
  for (int scenario = 0; scenario < 300; ++scenario) {
    const int64_t limit = 1 + static_cast<int64_t>(rng() % 200);
    std::vector<std::pair<UnixMillis, int64_t>> admitted;
    RateWindow built;
    UnixMillis now = kT0;
    for (int i = 0; i < 40; ++i) {
      now += static_cast<int64_t>(rng() % 5'000);
      const int64_t amount = static_cast<int64_t>(rng() % (limit + 1));
      if (built.TryAdd(now, amount, limit).admitted()) admitted.emplace_back(now, amount);
    }
    const int64_t amount = 1 + static_cast<int64_t>(rng() % limit);
    const std::optional<int64_t> wait = built.FitsAfterMs(now, amount, limit);
    ASSERT_TRUE(wait.has_value());
    // Replays of the same history, probed at the two instants.
    auto replay = [&] {
      RateWindow copy;
      for (const auto& [at, value] : admitted)
        EXPECT_TRUE(copy.TryAdd(at, value, limit).admitted());
      return copy;
    };
    RateWindow at_wait = replay();
    EXPECT_TRUE(at_wait.TryAdd(now + *wait, amount, limit).admitted()) << scenario;
    if (*wait > 0) {
      RateWindow before_wait = replay();
      EXPECT_EQ(before_wait.TryAdd(now + *wait - 1, amount, limit).outcome, WindowOutcome::kFull)
          << scenario;
    }
  }
}

TEST_F(RateWindowTest, AdjustDownFreesRoom) {
  const WindowDecision reserved = window_.TryAdd(kT0, 800, 1000);
  ASSERT_TRUE(reserved.admitted());
  EXPECT_FALSE(window_.TryAdd(kT0 + 1, 300, 1000).admitted());
  window_.Adjust(reserved.entry, 800, 120);
  EXPECT_EQ(window_.Used(kT0 + 2), 120);
  EXPECT_TRUE(window_.TryAdd(kT0 + 2, 300, 1000).admitted());
  EXPECT_EQ(window_.Used(kT0 + 2), 420);
}

TEST_F(RateWindowTest, AdjustUpCountsTheRealUsage) {
  const WindowDecision reserved = window_.TryAdd(kT0, 100, 1000);
  window_.Adjust(reserved.entry, 100, 950);
  EXPECT_EQ(window_.Used(kT0), 950);
  EXPECT_EQ(window_.Remaining(kT0, 1000), 50);
}

TEST_F(RateWindowTest, AdjustAfterTheEntryLeftIsIgnored) {
  const WindowDecision reserved = window_.TryAdd(kT0, 100, 1000);
  ASSERT_TRUE(window_.TryAdd(kT0 + kWindowMs, 10, 1000).admitted());
  window_.Adjust(reserved.entry, 100, 500);
  EXPECT_EQ(window_.Used(kT0 + kWindowMs), 10);
}

TEST_F(RateWindowTest, RemoveUndoesTheEntry) {
  const WindowDecision first = window_.TryAdd(kT0, 6, 10);
  const WindowDecision second = window_.TryAdd(kT0 + 1, 4, 10);
  window_.Remove(first.entry, 6);
  EXPECT_EQ(window_.Used(kT0 + 1), 4);
  window_.Remove(second.entry, 4);
  EXPECT_TRUE(window_.Empty(kT0 + 1));
}

TEST_F(RateWindowTest, AdmissionsOfOneMillisecondShareASlot) {
  const WindowDecision first = window_.TryAdd(kT0, 1, 10);
  const WindowDecision second = window_.TryAdd(kT0, 2, 10);
  EXPECT_EQ(second.entry, first.entry);
  EXPECT_EQ(window_.entry_count(), 1u);
  window_.Adjust(second.entry, 2, 5);  // only that admission's share changes
  EXPECT_EQ(window_.Used(kT0), 6);
  window_.Remove(second.entry, 5);
  EXPECT_EQ(window_.Used(kT0), 1);
  EXPECT_EQ(window_.entry_count(), 1u);  // the first admission still holds the slot
  window_.Remove(first.entry, 1);
  EXPECT_EQ(window_.entry_count(), 0u);  // emptied at the back: given back at once
  const WindowDecision next = window_.TryAdd(kT0, 3, 10);
  EXPECT_NE(next.entry, first.entry);  // ids are never reused
  EXPECT_EQ(window_.Used(kT0), 3);
}

TEST_F(RateWindowTest, StaleIdsAndIdsOfSlotsThatLeftChangeNothing) {
  const WindowDecision gone = window_.TryAdd(kT0, 4, 10);
  const WindowDecision kept = window_.TryAdd(kT0 + kWindowMs, 3, 10);
  window_.Remove(gone.entry, 4);  // left the window already
  window_.Adjust(gone.entry, 4, 9);
  window_.Remove(kNoWindowEntry, 1);
  window_.Adjust(12345, 1, 9);
  EXPECT_EQ(window_.Used(kT0 + kWindowMs), 3);
  window_.Adjust(kept.entry, 3, 0);
  EXPECT_EQ(window_.Used(kT0 + kWindowMs), 0);
  EXPECT_EQ(window_.entry_count(), 1u);  // an admission counting 0 still holds its slot
}

TEST_F(RateWindowTest, ABusyKeyKeepsOneSlotPerMillisecond) {
  for (int64_t ms = 0; ms < 2 * kWindowMs; ms += 7) {
    for (int call = 0; call < 50; ++call) {
      ASSERT_TRUE(window_.TryAdd(kT0 + ms, 1, 1 << 30).admitted());
    }
  }
  EXPECT_LE(window_.entry_count(), static_cast<size_t>(kWindowMs / 7 + 1));
  const int64_t used = window_.Used(kT0 + 2 * kWindowMs - 1);  // drops what has left first
  EXPECT_EQ(used, 50 * static_cast<int64_t>(window_.entry_count()));
}

TEST_F(RateWindowTest, EntriesAfterAGapAreStillFoundById) {
  std::vector<WindowEntryId> kept;
  for (int i = 0; i < 20; ++i) {
    const WindowDecision added = window_.TryAdd(kT0 + i, 1, 100);
    if (i % 3 == 0) {
      window_.Remove(added.entry, 1);  // the newest slot: dropped at once, leaving an id gap
    } else {
      kept.push_back(added.entry);
    }
  }
  for (WindowEntryId id : kept) window_.Adjust(id, 1, 2);
  EXPECT_EQ(window_.Used(kT0 + 20), 2 * static_cast<int64_t>(kept.size()));
}

TEST_F(RateWindowTest, ResetIsWhenTheOldestEntryLeaves) {
  EXPECT_EQ(window_.ResetMs(kT0), kT0);
  ASSERT_TRUE(window_.TryAdd(kT0 + 5, 1, 10).admitted());
  const WindowDecision second = window_.TryAdd(kT0 + 7, 1, 10);
  EXPECT_EQ(window_.ResetMs(kT0 + 8), kT0 + 5 + kWindowMs);
  EXPECT_EQ(window_.ResetMs(kT0 + 5 + kWindowMs), kT0 + 7 + kWindowMs);
  window_.Remove(second.entry, 1);
  EXPECT_EQ(window_.ResetMs(kT0 + 5 + kWindowMs), kT0 + 5 + kWindowMs);
}

TEST_F(RateWindowTest, ResetSkipsRemovedEntries) {
  const WindowDecision oldest = window_.TryAdd(kT0, 1, 10);
  ASSERT_TRUE(window_.TryAdd(kT0 + 100, 1, 10).admitted());
  window_.Remove(oldest.entry, 1);
  EXPECT_EQ(window_.ResetMs(kT0 + 200), kT0 + 100 + kWindowMs);
}

TEST_F(RateWindowTest, RemainingIsZeroWhenTheLimitWasLowered) {
  ASSERT_TRUE(window_.TryAdd(kT0, 8, 10).admitted());
  EXPECT_EQ(window_.Remaining(kT0, 10), 2);
  EXPECT_EQ(window_.Remaining(kT0, 5), 0);
  EXPECT_EQ(window_.TryAdd(kT0, 1, 5).outcome, WindowOutcome::kFull);
}

TEST_F(RateWindowTest, StaleNowIsTakenAsTheNewestEntrysTime) {
  ASSERT_TRUE(window_.TryAdd(kT0 + 1'000, 1, 2).admitted());
  // A caller that read its clock earlier still lands at kT0 + 1 s, never before.
  ASSERT_TRUE(window_.TryAdd(kT0, 1, 2).admitted());
  EXPECT_EQ(window_.Used(kT0 + 1'000 + kWindowMs - 1), 2);
  EXPECT_EQ(window_.TryAdd(kT0 + kWindowMs + 500, 1, 2).outcome, WindowOutcome::kFull);
  EXPECT_EQ(window_.Used(kT0 + 1'000 + kWindowMs), 0);
}

TEST_F(RateWindowTest, MemoryIsBoundedByTheEntriesInTheWindow) {
  for (int64_t ms = 0; ms < 10 * kWindowMs; ++ms) {
    ASSERT_TRUE(window_.TryAdd(kT0 + ms, 1, kWindowMs).admitted());
    ASSERT_LE(window_.entry_count(), static_cast<size_t>(kWindowMs));
  }
  EXPECT_TRUE(window_.Empty(kT0 + 11 * kWindowMs));
  EXPECT_EQ(window_.entry_count(), 0u);
}

TEST(RateWindowLengthTest, WindowLengthIsAParameter) {
  RateWindow window(1'000);
  EXPECT_EQ(window.window_ms(), 1'000);
  ASSERT_TRUE(window.TryAdd(kT0, 1, 1).admitted());
  EXPECT_EQ(window.TryAdd(kT0 + 999, 1, 1).retry_after_ms, 1);
  EXPECT_TRUE(window.TryAdd(kT0 + 1'000, 1, 1).admitted());
}

TEST_F(RateWindowTest, FitsAfterMsIsZeroWhenItFitsNow) {
  EXPECT_EQ(window_.FitsAfterMs(kT0, 10, 10), 0);
  ASSERT_TRUE(window_.TryAdd(kT0, 4, 10).admitted());
  EXPECT_EQ(window_.FitsAfterMs(kT0, 6, 10), 0);
  EXPECT_EQ(window_.FitsAfterMs(kT0, 7, 10), kWindowMs);
  EXPECT_EQ(window_.Used(kT0), 4);  // asking adds nothing
}

}  // namespace
}  // namespace keygate::limits
