#include "limits/local_limiter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/time_format.h"
#include "limits/period.h"
#include "testing/manual_clock.h"

namespace keygate::limits {
namespace {

using keys::ResetInterval;

constexpr int64_t kMsPerHour = 3'600'000;
constexpr int64_t kWindowMs = 60'000;
constexpr char kLineage[] = "lineage-a";

UnixMillis Midnight(int64_t year, unsigned month, unsigned day) {
  return DayStartMs(DaysFromCivil(year, month, day));
}

class LocalLimiterTest : public ::testing::Test {
 protected:
  // The store's answer for a lineage; fails while store_down_ is set.
  Result<MicroUsd> Load(const std::string& lineage, UnixMillis period_start) {
    std::lock_guard<std::mutex> lock(mu_);
    ++loads_;
    last_period_start_ = period_start;
    if (store_down_) return Error::Unavailable("store down");
    auto it = stored_.find(lineage);
    return it == stored_.end() ? MicroUsd{0} : it->second;
  }

  AdmitRequest Request(int64_t tokens = 10, MicroUsd cost = 100) const {
    AdmitRequest request;
    request.lineage = kLineage;
    request.now = clock_.NowMs();
    request.worst_case_tokens = tokens;
    request.worst_case_cost = cost;
    return request;
  }

  LimiterSnapshot SnapshotNow(ResetInterval interval = ResetInterval::kMonthly) {
    Result<LimiterSnapshot> snapshot = limiter_.Snapshot(kLineage, clock_.NowMs(), interval);
    EXPECT_TRUE(snapshot.ok());
    return snapshot.ok() ? *snapshot : LimiterSnapshot{};
  }

  keygate::testing::ManualClock clock_{Midnight(2024, 3, 15) + 12 * kMsPerHour};
  std::mutex mu_;
  std::map<std::string, MicroUsd> stored_;
  bool store_down_ = false;
  int loads_ = 0;
  UnixMillis last_period_start_ = -1;
  std::function<void()> on_load_;
  LocalLimiter limiter_{[this](const std::string& lineage, UnixMillis period_start) {
    if (on_load_) on_load_();
    return Load(lineage, period_start);
  }};
};

TEST_F(LocalLimiterTest, AllowsAndReportsTheHeaderFiguresAfterAdmission) {
  AdmitRequest request = Request(100);
  request.rpm_limit = 3;
  request.tpm_limit = 1'000;
  const Decision decision = limiter_.Admit(request);
  ASSERT_EQ(decision.outcome, LimitOutcome::kAllow);
  EXPECT_TRUE(decision.ticket.valid());
  EXPECT_EQ(decision.retry_after_ms, 0);
  ASSERT_TRUE(decision.requests.has_value());
  EXPECT_EQ(decision.requests->limit, 3);
  EXPECT_EQ(decision.requests->remaining, 2);
  EXPECT_EQ(decision.requests->reset_at_ms, request.now + kWindowMs);
  ASSERT_TRUE(decision.tokens.has_value());
  EXPECT_EQ(decision.tokens->limit, 1'000);
  EXPECT_EQ(decision.tokens->remaining, 900);
  EXPECT_FALSE(decision.budget.has_value());
}

TEST_F(LocalLimiterTest, NoLimitsMeansNoFiguresAndNoStoreRead) {
  const Decision decision = limiter_.Admit(Request());
  EXPECT_TRUE(decision.allowed());
  EXPECT_FALSE(decision.requests.has_value());
  EXPECT_FALSE(decision.tokens.has_value());
  EXPECT_FALSE(decision.budget.has_value());
  EXPECT_EQ(loads_, 0);
}

TEST_F(LocalLimiterTest, RpmRejectionHasAnHonestRetryAfter) {
  AdmitRequest request = Request();
  request.rpm_limit = 2;
  ASSERT_TRUE(limiter_.Admit(request).allowed());
  clock_.AdvanceMs(10'000);
  request.now = clock_.NowMs();
  ASSERT_TRUE(limiter_.Admit(request).allowed());
  clock_.AdvanceMs(10'000);
  request.now = clock_.NowMs();
  const Decision refused = limiter_.Admit(request);
  ASSERT_EQ(refused.outcome, LimitOutcome::kRejectRpm);
  EXPECT_EQ(refused.retry_after_ms, 40'000);
  EXPECT_FALSE(refused.ticket.valid());
  EXPECT_EQ(refused.requests->remaining, 0);
  request.now += refused.retry_after_ms - 1;
  EXPECT_EQ(limiter_.Admit(request).outcome, LimitOutcome::kRejectRpm);
  request.now += 1;
  EXPECT_TRUE(limiter_.Admit(request).allowed());
}

TEST_F(LocalLimiterTest, RestoredCallsFillTheWindowsUntilTheyLeaveThem) {
  // A restart: the previous process admitted three calls (the last with 900 tokens) in the
  // last minute; the store gives them back before the first admission.
  const UnixMillis now = clock_.NowMs();
  limiter_.RestoreCall(kLineage, now - 50'000, 10);
  limiter_.RestoreCall(kLineage, now - 40'000, 10);
  limiter_.RestoreCall(kLineage, now - 30'000, 900);
  limiter_.RestoreCall("lineage-b", now - 1, 5);
  AdmitRequest request = Request(100);
  request.rpm_limit = 3;
  Decision refused = limiter_.Admit(request);
  EXPECT_EQ(refused.outcome, LimitOutcome::kRejectRpm);
  EXPECT_EQ(refused.retry_after_ms, 10'000);  // when the call of now - 50 s leaves
  ASSERT_TRUE(refused.requests.has_value());
  EXPECT_EQ(refused.requests->remaining, 0);
  request.rpm_limit = 4;
  request.tpm_limit = 1000;
  EXPECT_EQ(limiter_.Admit(request).outcome, LimitOutcome::kRejectTpm);  // 920 + 100 > 1000
  // The budget is not restored but read from the store, as after any start.
  request.tpm_limit = 1100;
  request.credit_limit = 1000;
  EXPECT_TRUE(limiter_.Admit(request).allowed());
  EXPECT_EQ(loads_, 1);
  // Once the restored calls have left the window, it is as empty as the limits say.
  clock_.AdvanceMs(30'001);
  EXPECT_EQ(SnapshotNow().requests_in_window, 1);
  EXPECT_EQ(SnapshotNow().tokens_in_window, 100);
}

TEST_F(LocalLimiterTest, WindowsAreReadWithoutTakingOrHoldingAnything) {
  const UnixMillis now = clock_.NowMs();
  WindowPair unseen = limiter_.Windows(kLineage, now, 3, std::nullopt);
  ASSERT_TRUE(unseen.requests.has_value());
  EXPECT_EQ(unseen.requests->remaining, 3);
  EXPECT_EQ(unseen.requests->reset_at_ms, now);
  EXPECT_FALSE(unseen.tokens.has_value());
  EXPECT_EQ(limiter_.LineageCount(), 0u);  // no state made
  AdmitRequest request = Request(40);
  request.rpm_limit = 3;
  request.tpm_limit = 100;
  ASSERT_TRUE(limiter_.Admit(request).allowed());
  for (int i = 0; i < 2; ++i) {  // reading twice takes nothing
    WindowPair seen = limiter_.Windows(kLineage, now, 3, 100);
    ASSERT_TRUE(seen.requests.has_value() && seen.tokens.has_value());
    EXPECT_EQ(seen.requests->remaining, 2);
    EXPECT_EQ(seen.tokens->remaining, 60);
    EXPECT_EQ(seen.requests->reset_at_ms, now + kWindowMs);
  }
  EXPECT_EQ(loads_, 0);
}

// What the management answers read (v2's consumption figures): no state made and no store read
// (a snapshot reads the spend of a lineage it does not hold).
TEST_F(LocalLimiterTest, UseReadsTheWindowsWithoutReadingTheStoreOrMakingAnything) {
  const UnixMillis now = clock_.NowMs();
  const WindowUse unseen = limiter_.Use(kLineage, now);
  EXPECT_EQ(unseen.requests, 0);
  EXPECT_EQ(unseen.tokens, 0);
  EXPECT_EQ(limiter_.LineageCount(), 0u);
  EXPECT_EQ(loads_, 0);
  ASSERT_TRUE(limiter_.Admit(Request(40)).allowed());
  const WindowUse seen = limiter_.Use(kLineage, now);
  EXPECT_EQ(seen.requests, 1);
  EXPECT_EQ(seen.tokens, 40);
  EXPECT_EQ(limiter_.Use(kLineage, now + kWindowMs).requests, 0);  // out of the window
  EXPECT_EQ(loads_, 0);
}

TEST_F(LocalLimiterTest, RpmRetryAfterAlsoWaitsForTheTokensWindow) {
  AdmitRequest request = Request(10);
  request.rpm_limit = 2;
  request.tpm_limit = 100;
  const UnixMillis start = request.now;
  ASSERT_TRUE(limiter_.Admit(request).allowed());
  request.now = start + 30'000;
  request.worst_case_tokens = 90;
  ASSERT_TRUE(limiter_.Admit(request).allowed());
  // The request slot frees at start + 60 s; 50 tokens fit only when the 90 leave, at + 90 s.
  request.now = start + 40'000;
  request.worst_case_tokens = 50;
  const Decision refused = limiter_.Admit(request);
  ASSERT_EQ(refused.outcome, LimitOutcome::kRejectRpm);
  EXPECT_EQ(refused.retry_after_ms, 50'000);
  request.now += refused.retry_after_ms - 1;
  EXPECT_FALSE(limiter_.Admit(request).allowed());
  request.now += 1;
  EXPECT_TRUE(limiter_.Admit(request).allowed());
}

TEST_F(LocalLimiterTest, TpmRejectionDoesNotConsumeARequestSlot) {
  AdmitRequest request = Request(80);
  request.rpm_limit = 2;
  request.tpm_limit = 100;
  ASSERT_TRUE(limiter_.Admit(request).allowed());
  request.worst_case_tokens = 30;
  const Decision refused = limiter_.Admit(request);
  ASSERT_EQ(refused.outcome, LimitOutcome::kRejectTpm);
  EXPECT_EQ(refused.retry_after_ms, kWindowMs);
  EXPECT_EQ(refused.requests->remaining, 1);
  EXPECT_EQ(refused.tokens->remaining, 20);
  EXPECT_EQ(SnapshotNow().requests_in_window, 1);
  EXPECT_EQ(SnapshotNow().tokens_in_window, 80);
}

TEST_F(LocalLimiterTest, RequestLargerThanTheTpmLimitNeverFits) {
  AdmitRequest request = Request(101);
  request.rpm_limit = 5;
  request.tpm_limit = 100;
  const Decision refused = limiter_.Admit(request);
  EXPECT_EQ(refused.outcome, LimitOutcome::kRejectTpmNeverFits);
  EXPECT_EQ(refused.retry_after_ms, 0);
  EXPECT_EQ(refused.requests->remaining, 5);
  EXPECT_EQ(refused.tokens->remaining, 100);
  request.worst_case_tokens = 100;
  EXPECT_TRUE(limiter_.Admit(request).allowed());
}

TEST_F(LocalLimiterTest, BudgetRejectionDoesNotConsumeRpmOrTpm) {
  AdmitRequest request = Request(40, 800);
  request.rpm_limit = 10;
  request.tpm_limit = 1'000;
  request.credit_limit = 1'000;
  request.reset_interval = ResetInterval::kMonthly;
  ASSERT_TRUE(limiter_.Admit(request).allowed());
  request.worst_case_cost = 201;
  const Decision refused = limiter_.Admit(request);
  ASSERT_EQ(refused.outcome, LimitOutcome::kRejectBudget);
  ASSERT_TRUE(refused.budget.has_value());
  EXPECT_EQ(refused.budget->limit, 1'000);
  EXPECT_EQ(refused.budget->spend, 0);
  EXPECT_EQ(refused.budget->reserved, 800);
  EXPECT_EQ(refused.budget->resets_at_ms, Midnight(2024, 4, 1));
  EXPECT_EQ(refused.requests->remaining, 9);
  EXPECT_EQ(refused.tokens->remaining, 960);
  const LimiterSnapshot snapshot = SnapshotNow();
  EXPECT_EQ(snapshot.requests_in_window, 1);
  EXPECT_EQ(snapshot.tokens_in_window, 40);
  EXPECT_EQ(snapshot.reserved, 800);
}

TEST_F(LocalLimiterTest, SettleReplacesBothReservationsWithTheRealFigures) {
  AdmitRequest request = Request(500, 10'000);
  request.tpm_limit = 1'000;
  request.credit_limit = 50'000;
  const Decision decision = limiter_.Admit(request);
  ASSERT_TRUE(decision.allowed());
  EXPECT_EQ(decision.budget->reserved, 10'000);
  limiter_.Settle(decision.ticket, 120, 3'141, clock_.NowMs());
  const LimiterSnapshot snapshot = SnapshotNow(ResetInterval::kNever);
  EXPECT_EQ(snapshot.requests_in_window, 1);
  EXPECT_EQ(snapshot.tokens_in_window, 120);
  EXPECT_EQ(snapshot.spend, 3'141);
  EXPECT_EQ(snapshot.reserved, 0);
}

TEST_F(LocalLimiterTest, ReleaseReturnsTokensAndCostButTheRequestStillCounts) {
  AdmitRequest request = Request(500, 10'000);
  request.rpm_limit = 5;
  request.tpm_limit = 1'000;
  request.credit_limit = 50'000;
  const Decision decision = limiter_.Admit(request);
  limiter_.Release(decision.ticket);
  const LimiterSnapshot snapshot = SnapshotNow(ResetInterval::kNever);
  EXPECT_EQ(snapshot.requests_in_window, 1);
  EXPECT_EQ(snapshot.tokens_in_window, 0);
  EXPECT_EQ(snapshot.spend, 0);
  EXPECT_EQ(snapshot.reserved, 0);
}

TEST_F(LocalLimiterTest, SecondSettleOrReleaseOfATicketIsIgnored) {
  AdmitRequest request = Request(100, 1'000);
  request.credit_limit = 10'000;
  const Decision decision = limiter_.Admit(request);
  limiter_.Settle(decision.ticket, 50, 400, clock_.NowMs());
  limiter_.Settle(decision.ticket, 50, 400, clock_.NowMs());
  limiter_.Release(decision.ticket);
  limiter_.Settle(Ticket{}, 1, 1, clock_.NowMs());
  limiter_.Release(Ticket{987654});
  limiter_.Release(Ticket{1});
  const LimiterSnapshot snapshot = SnapshotNow(ResetInterval::kNever);
  EXPECT_EQ(snapshot.spend, 400);
  EXPECT_EQ(snapshot.tokens_in_window, 50);
}

TEST_F(LocalLimiterTest, StoredSpendIsLoadedOncePerLineage) {
  stored_[kLineage] = 900;
  AdmitRequest request = Request(1, 100);
  request.credit_limit = 1'000;
  request.reset_interval = ResetInterval::kMonthly;
  const Decision first = limiter_.Admit(request);
  ASSERT_TRUE(first.allowed());
  EXPECT_EQ(first.budget->spend, 900);
  EXPECT_EQ(last_period_start_, Midnight(2024, 3, 1));
  const Decision second = limiter_.Admit(request);
  EXPECT_EQ(second.outcome, LimitOutcome::kRejectBudget);
  EXPECT_EQ(loads_, 1);
}

TEST_F(LocalLimiterTest, StoreFailureAnswersStoreUnavailableAndConsumesNothing) {
  store_down_ = true;
  AdmitRequest request = Request(10, 100);
  request.rpm_limit = 1;
  request.credit_limit = 1'000;
  const Decision refused = limiter_.Admit(request);
  EXPECT_EQ(refused.outcome, LimitOutcome::kStoreUnavailable);
  EXPECT_FALSE(refused.ticket.valid());
  EXPECT_FALSE(limiter_.Snapshot(kLineage, clock_.NowMs(), ResetInterval::kNever).ok());
  store_down_ = false;
  EXPECT_TRUE(limiter_.Admit(request).allowed());  // the request slot was never taken
}

TEST_F(LocalLimiterTest, LoaderRunsWithNoLockHeld) {
  // A loader that needs every shard would deadlock if Admit held one across the read.
  on_load_ = [this] { EXPECT_GE(limiter_.LineageCount(), 1u); };
  AdmitRequest request = Request();
  request.credit_limit = 1'000;
  EXPECT_TRUE(limiter_.Admit(request).allowed());
  EXPECT_EQ(loads_, 1);
}

TEST_F(LocalLimiterTest, DailyRolloverResetsSpendWithoutAStoreRead) {
  stored_[kLineage] = 600;
  clock_.SetMs(Midnight(2024, 3, 16) - 1);
  AdmitRequest request = Request(1, 300);
  request.credit_limit = 1'000;
  request.reset_interval = ResetInterval::kDaily;
  const Decision before_midnight = limiter_.Admit(request);
  ASSERT_TRUE(before_midnight.allowed());
  EXPECT_EQ(limiter_.Admit(request).outcome, LimitOutcome::kRejectBudget);
  clock_.AdvanceMs(1);
  limiter_.Settle(before_midnight.ticket, 1, 300, clock_.NowMs());
  request.now = clock_.NowMs();
  request.worst_case_cost = 700;
  const Decision after_midnight = limiter_.Admit(request);
  ASSERT_TRUE(after_midnight.allowed());
  EXPECT_EQ(after_midnight.budget->spend, 300);  // settled after midnight: today's spend
  EXPECT_EQ(after_midnight.budget->resets_at_ms, Midnight(2024, 3, 17));
  EXPECT_EQ(loads_, 1);
}

TEST_F(LocalLimiterTest, LimitsAreCountedPerLineage) {
  AdmitRequest request = Request();
  request.rpm_limit = 1;
  ASSERT_TRUE(limiter_.Admit(request).allowed());
  EXPECT_FALSE(limiter_.Admit(request).allowed());
  request.lineage = "lineage-b";
  EXPECT_TRUE(limiter_.Admit(request).allowed());
}

TEST_F(LocalLimiterTest, ChangedLimitTakesEffectOnTheNextRequest) {
  AdmitRequest request = Request();
  request.rpm_limit = 5;
  ASSERT_TRUE(limiter_.Admit(request).allowed());
  ASSERT_TRUE(limiter_.Admit(request).allowed());
  request.rpm_limit = 2;
  const Decision refused = limiter_.Admit(request);
  EXPECT_EQ(refused.outcome, LimitOutcome::kRejectRpm);
  EXPECT_EQ(refused.requests->remaining, 0);
}

TEST_F(LocalLimiterTest, EvictIdleKeepsBusyLineagesAndReseedsEvictedOnes) {
  AdmitRequest request = Request(10, 300);
  request.credit_limit = 1'000;
  const Decision open = limiter_.Admit(request);
  request.lineage = "lineage-b";
  const Decision settled = limiter_.Admit(request);
  limiter_.Settle(settled.ticket, 10, 300, clock_.NowMs());
  stored_["lineage-b"] = 300;                         // what the usage writer recorded
  EXPECT_EQ(limiter_.EvictIdle(clock_.NowMs()), 0u);  // windows not empty yet
  clock_.AdvanceMs(kWindowMs);
  EXPECT_EQ(limiter_.EvictIdle(clock_.NowMs()), 1u);  // lineage-a still has an open ticket
  EXPECT_EQ(limiter_.LineageCount(), 1u);
  request.now = clock_.NowMs();
  const Decision again = limiter_.Admit(request);
  ASSERT_TRUE(again.allowed());
  EXPECT_EQ(again.budget->spend, 300);
  EXPECT_EQ(loads_, 3);
  limiter_.Settle(open.ticket, 10, 300, clock_.NowMs());
  EXPECT_EQ(SnapshotNow(ResetInterval::kNever).spend, 300);
}

TEST_F(LocalLimiterTest, EvictIdleWaitsForTheQuietTimeAfterTheLastSettle) {
  const Decision decision = limiter_.Admit(Request());
  clock_.AdvanceMs(2 * kWindowMs);
  limiter_.Settle(decision.ticket, 1, 1, clock_.NowMs());
  EXPECT_EQ(limiter_.EvictIdle(clock_.NowMs()), 0u);
  clock_.AdvanceMs(kWindowMs);
  EXPECT_EQ(limiter_.EvictIdle(clock_.NowMs()), 1u);
}

TEST_F(LocalLimiterTest, SnapshotOfAnUnknownLineageReadsTheStoreAndKeepsNoState) {
  stored_[kLineage] = 4'242;
  const LimiterSnapshot snapshot = SnapshotNow(ResetInterval::kWeekly);
  EXPECT_EQ(snapshot.spend, 4'242);
  EXPECT_EQ(snapshot.requests_in_window, 0);
  EXPECT_EQ(snapshot.period_start, Midnight(2024, 3, 11));
  EXPECT_EQ(snapshot.resets_at_ms, Midnight(2024, 3, 18));
  EXPECT_EQ(last_period_start_, Midnight(2024, 3, 11));
  EXPECT_EQ(limiter_.LineageCount(), 0u);
}

// Many lineages at once: each gets exactly its RPM, no more, no less.
TEST_F(LocalLimiterTest, ConcurrentLineagesEachGetExactlyTheirRpm) {
  constexpr int kThreads = 8;
  constexpr int kLineages = 16;
  constexpr int kAttemptsPerLineage = 10;
  constexpr int64_t kRpm = 25;
  std::vector<std::atomic<int>> allowed(kLineages);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int attempt = 0; attempt < kAttemptsPerLineage; ++attempt) {
        for (int l = 0; l < kLineages; ++l) {
          AdmitRequest request = Request(0, 0);
          const std::string lineage = "lineage-" + std::to_string(l);
          request.lineage = lineage;
          request.rpm_limit = kRpm;
          if (limiter_.Admit(request).allowed()) ++allowed[l];
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int l = 0; l < kLineages; ++l) EXPECT_EQ(allowed[l].load(), kRpm) << l;
}

// The promise of spec §3, under contention: 8 threads hammer one lineage in rounds of simulated
// time. No rolling window ever holds more admitted requests than the RPM or more real tokens
// than the TPM, spend + reserved never passes the credit limit, and once everything is
// settled the spend is exactly the sum of the settled costs and within the limit.
class LimiterPromiseTest : public LocalLimiterTest {
 protected:
  static constexpr int kThreads = 8;
  static constexpr int kRounds = 300;
  static constexpr int kOpsPerRound = 12;
  static constexpr int64_t kRpm = 40;
  static constexpr int64_t kTpm = 4'000;
  static constexpr MicroUsd kCreditLimit = 500'000;
  static constexpr MicroUsd kMicroUsdPerToken = 25;
  static constexpr int64_t kMaxStepMs = 4'000;

  struct Admission {
    UnixMillis at_ms = 0;
    int64_t tokens = 0;  // real tokens once settled; 0 once released
  };
  struct Open {
    Ticket ticket;
    size_t admission = 0;  // index in the thread's log
    int64_t tokens = 0;
    MicroUsd cost = 0;
  };

  // Runs between rounds, alone: moves simulated time on by a random step.
  struct AdvanceClock {
    keygate::testing::ManualClock* clock;
    std::mt19937_64* steps;
    void operator()() noexcept { clock->AdvanceMs(static_cast<int64_t>((*steps)() % kMaxStepMs)); }
  };

  // One thread's part: admit, settle or release at random, checking the budget as it goes.
  void Hammer(int thread, std::barrier<AdvanceClock>& round_done, std::vector<Admission>& log) {
    std::mt19937_64 rng(1'000 + thread);
    std::vector<Open> open;
    for (int round = 0; round < kRounds; ++round) {
      const UnixMillis now = clock_.NowMs();
      for (int op = 0; op < kOpsPerRound; ++op) {
        const uint64_t dice = rng() % 10;
        if (dice < 6 || open.empty()) {
          AdmitOne(now, rng, open, log);
        } else {
          const size_t pick = rng() % open.size();
          Finish(open[pick], dice < 9, now, rng, log);
          open.erase(open.begin() + static_cast<std::ptrdiff_t>(pick));
        }
        CheckBudget(now);
      }
      round_done.arrive_and_wait();
    }
    for (Open& left : open) Finish(left, true, clock_.NowMs(), rng, log);
  }

  void AdmitOne(UnixMillis now, std::mt19937_64& rng, std::vector<Open>& open,
                std::vector<Admission>& log) {
    AdmitRequest request;
    request.lineage = kLineage;
    request.now = now;
    request.rpm_limit = kRpm;
    request.tpm_limit = kTpm;
    request.credit_limit = kCreditLimit;
    request.reset_interval = ResetInterval::kMonthly;
    request.worst_case_tokens = 1 + static_cast<int64_t>(rng() % 400);
    request.worst_case_cost = request.worst_case_tokens * kMicroUsdPerToken;
    const Decision decision = limiter_.Admit(request);
    ++outcomes_[static_cast<int>(decision.outcome)];
    if (decision.budget.has_value() &&
        decision.budget->spend + decision.budget->reserved > kCreditLimit) {
      ++violations_;
    }
    if (!decision.allowed()) return;
    log.push_back({now, request.worst_case_tokens});
    open.push_back(
        {decision.ticket, log.size() - 1, request.worst_case_tokens, request.worst_case_cost});
  }

  // Settles with real figures at most the worst case, or releases.
  void Finish(const Open& item, bool settle, UnixMillis now, std::mt19937_64& rng,
              std::vector<Admission>& log) {
    if (!settle) {
      limiter_.Release(item.ticket);
      log[item.admission].tokens = 0;
      return;
    }
    const int64_t tokens = static_cast<int64_t>(rng() % (item.tokens + 1));
    const MicroUsd cost = static_cast<MicroUsd>(rng() % (item.cost + 1));
    limiter_.Settle(item.ticket, tokens, cost, now);
    log[item.admission].tokens = tokens;
    settled_cost_ += cost;
  }

  void CheckBudget(UnixMillis now) {
    Result<LimiterSnapshot> snapshot = limiter_.Snapshot(kLineage, now, ResetInterval::kMonthly);
    if (!snapshot.ok() || snapshot->spend + snapshot->reserved > kCreditLimit) ++violations_;
  }

  std::atomic<int> violations_{0};
  std::atomic<MicroUsd> settled_cost_{0};
  std::array<std::atomic<int>, 6> outcomes_{};
};

// The largest number of requests and of tokens in any window of kWindowMs.
std::pair<int64_t, int64_t> BusiestWindow(std::vector<std::pair<UnixMillis, int64_t>> entries) {
  std::sort(entries.begin(), entries.end());
  int64_t max_requests = 0;
  int64_t max_tokens = 0;
  int64_t tokens = 0;
  size_t oldest = 0;
  for (size_t newest = 0; newest < entries.size(); ++newest) {
    tokens += entries[newest].second;
    while (entries[oldest].first <= entries[newest].first - kWindowMs) {
      tokens -= entries[oldest].second;
      ++oldest;
    }
    // Only windows ending after the last entry of a timestamp hold all of that timestamp.
    if (newest + 1 < entries.size() && entries[newest + 1].first == entries[newest].first) {
      continue;
    }
    max_requests = std::max<int64_t>(max_requests, static_cast<int64_t>(newest - oldest + 1));
    max_tokens = std::max(max_tokens, tokens);
  }
  return {max_requests, max_tokens};
}

TEST_F(LimiterPromiseTest, NoWindowOrPeriodEverPassesItsLimitUnderContention) {
  std::mt19937_64 steps(7);
  std::barrier<AdvanceClock> round_done(kThreads, AdvanceClock{&clock_, &steps});
  std::vector<std::vector<Admission>> logs(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] { Hammer(t, round_done, logs[t]); });
  }
  for (std::thread& thread : threads) thread.join();

  std::vector<std::pair<UnixMillis, int64_t>> admitted;
  for (const auto& log : logs) {
    for (const Admission& a : log) admitted.emplace_back(a.at_ms, a.tokens);
  }
  const auto [busiest_requests, busiest_tokens] = BusiestWindow(admitted);
  EXPECT_LE(busiest_requests, kRpm);
  EXPECT_LE(busiest_tokens, kTpm);
  EXPECT_EQ(violations_.load(), 0);
  const LimiterSnapshot settled = SnapshotNow();
  EXPECT_EQ(settled.reserved, 0);
  EXPECT_EQ(settled.spend, settled_cost_.load());
  EXPECT_LE(settled.spend, kCreditLimit);
  // The run must have met every kind of refusal, or it proved little.
  EXPECT_GT(outcomes_[static_cast<int>(LimitOutcome::kRejectRpm)].load(), 0);
  EXPECT_GT(outcomes_[static_cast<int>(LimitOutcome::kRejectTpm)].load(), 0);
  EXPECT_GT(outcomes_[static_cast<int>(LimitOutcome::kRejectBudget)].load(), 0);
  EXPECT_EQ(outcomes_[static_cast<int>(LimitOutcome::kStoreUnavailable)].load(), 0);
  EXPECT_EQ(busiest_requests, kRpm);  // the limit is reached, not merely respected
}

// Callers whose clock reads race each other (no rounds): budgets still hold at every moment,
// and the final spend is exactly what was settled.
TEST_F(LimiterPromiseTest, BudgetHoldsWhileTheClockMovesUnderTheCallers) {
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      std::mt19937_64 rng(50 + t);
      std::vector<Admission> log;
      std::vector<Open> open;
      for (int op = 0; op < kRounds * kOpsPerRound / 4; ++op) {
        clock_.AdvanceMs(static_cast<int64_t>(rng() % 200));
        if (rng() % 2 == 0 || open.empty()) {
          AdmitOne(clock_.NowMs(), rng, open, log);
        } else {
          Finish(open.back(), rng() % 4 != 0, clock_.NowMs(), rng, log);
          open.pop_back();
        }
        CheckBudget(clock_.NowMs());
      }
      for (Open& left : open) Finish(left, true, clock_.NowMs(), rng, log);
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(violations_.load(), 0);
  const LimiterSnapshot settled = SnapshotNow();
  EXPECT_EQ(settled.reserved, 0);
  EXPECT_EQ(settled.spend, settled_cost_.load());
  EXPECT_LE(settled.spend, kCreditLimit);
  EXPECT_GT(outcomes_[static_cast<int>(LimitOutcome::kRejectBudget)].load(), 0);
}

}  // namespace
}  // namespace keygate::limits
