#include "server/usage_pruner.h"

#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "limits/period.h"
#include "testing/manual_clock.h"

namespace keygate::server {
namespace {

using testing::ManualClock;

constexpr int64_t kMinuteMs = 60'000;

// A store whose prune answers from a script, and which notes each write asked of it.
struct ScriptedStore {
  std::vector<Result<store::PrunedUsage>> answers;  // one per write; then "nothing left"
  std::vector<UnixMillis> cuts;
  std::vector<int64_t> bounds;

  UsagePruner::PruneFn Fn() {
    return [this](UnixMillis before, int64_t max_records) -> Result<store::PrunedUsage> {
      cuts.push_back(before);
      bounds.push_back(max_records);
      if (cuts.size() > answers.size()) return store::PrunedUsage{};
      return answers[cuts.size() - 1];
    };
  }
};

store::PrunedUsage Full() { return store::PrunedUsage{1, 100, true}; }
store::PrunedUsage Last() { return store::PrunedUsage{1, 40, false}; }

class UsagePrunerTest : public ::testing::Test {
 protected:
  UsagePrunerTest() : out_(std::tmpfile()), log_(out_) {}
  ~UsagePrunerTest() override { std::fclose(out_); }

  std::string Log() {
    std::fflush(out_);
    std::string text;
    std::rewind(out_);
    char buffer[512];
    for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, out_)) > 0;) text.append(buffer, n);
    return text;
  }

  static UsagePrunerOptions Options(int64_t days) {
    return UsagePrunerOptions{.retention_days = days,
                              .every_ns = kMinuteMs * 1'000'000,
                              .records_per_write = 100,
                              .writes_per_tick = 3};
  }

  ManualClock clock_;
  std::FILE* out_;
  Logger log_;
};

TEST_F(UsagePrunerTest, WithoutARetentionNothingIsEverPruned) {
  ScriptedStore store;
  UsagePruner pruner(Options(0), store.Fn(), clock_, log_);
  for (int i = 0; i < 5; ++i) {
    pruner.Tick();
    clock_.AdvanceMs(kMinuteMs);
  }
  EXPECT_TRUE(store.cuts.empty());
}

TEST_F(UsagePrunerTest, PrunesOnceAMinuteAtTheRetentionsCutInBoundedWrites) {
  ScriptedStore store;
  store.answers = {Last(), Last()};
  UsagePruner pruner(Options(30), store.Fn(), clock_, log_);
  pruner.Tick();  // the first tick prunes at once
  ASSERT_EQ(store.cuts.size(), 1u);
  EXPECT_EQ(store.cuts[0], clock_.NowMs() - 30 * limits::kMsPerDay);
  EXPECT_EQ(store.bounds[0], 100);
  clock_.AdvanceMs(kMinuteMs - 1);
  pruner.Tick();
  EXPECT_EQ(store.cuts.size(), 1u);  // not before the minute is up
  clock_.AdvanceMs(1);
  pruner.Tick();
  ASSERT_EQ(store.cuts.size(), 2u);
  EXPECT_EQ(store.cuts[1], clock_.NowMs() - 30 * limits::kMsPerDay);
  // A step of the wall clock neither hurries nor stops it: only the cut moves with it.
  clock_.SetMs(clock_.NowMs() + 10 * limits::kMsPerDay);
  pruner.Tick();
  EXPECT_EQ(store.cuts.size(), 2u);
  EXPECT_NE(Log().find(R"("event":"usage.records_pruned","records":40)"), std::string::npos)
      << Log();
}

TEST_F(UsagePrunerTest, ABacklogGoesOnAtTheNextTickAndEndsAtItsLastWrite) {
  ScriptedStore store;
  store.answers = {Full(), Full(), Full(), Full(), Last()};
  UsagePruner pruner(Options(30), store.Fn(), clock_, log_);
  pruner.Tick();
  EXPECT_EQ(store.cuts.size(), 3u);  // writes_per_tick, each bounded
  clock_.AdvanceMs(500);
  pruner.Tick();  // more was left: the next tick goes on, not a minute later
  EXPECT_EQ(store.cuts.size(), 5u);
  EXPECT_NE(Log().find(R"("records":300)"), std::string::npos) << Log();
  EXPECT_NE(Log().find(R"("records":140)"), std::string::npos) << Log();
  clock_.AdvanceMs(500);
  pruner.Tick();  // the backlog is gone: a minute's wait again
  EXPECT_EQ(store.cuts.size(), 5u);
  clock_.AdvanceMs(kMinuteMs);
  pruner.Tick();
  EXPECT_EQ(store.cuts.size(), 6u);
}

TEST_F(UsagePrunerTest, AFailedWriteIsLoggedAndTriedAgainAMinuteLater) {
  ScriptedStore store;
  store.answers = {Full(), Error::Unavailable("database is locked"), Full(), Last()};
  UsagePruner pruner(Options(30), store.Fn(), clock_, log_);
  pruner.Tick();
  EXPECT_EQ(store.cuts.size(), 2u);  // stopped at the failure
  const std::string log = Log();
  EXPECT_NE(log.find(R"("event":"usage.prune_failed")"), std::string::npos) << log;
  EXPECT_NE(log.find("database is locked"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("records":100)"), std::string::npos) << log;  // what it did prune
  clock_.AdvanceMs(500);
  pruner.Tick();
  EXPECT_EQ(store.cuts.size(), 2u);
  clock_.AdvanceMs(kMinuteMs);
  pruner.Tick();
  EXPECT_EQ(store.cuts.size(), 4u);
}

}  // namespace
}  // namespace keygate::server
