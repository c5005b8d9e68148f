#include "dialects/common/key_view.h"

#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "testing/manual_clock.h"

namespace keygate::dialects {
namespace {

using keygate::testing::ManualClock;

constexpr UnixMillis kNow = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

// Answers zeros for every lineage and counts the questions.
class CountingUsage final : public store::UsageStore {
 public:
  Status AppendUsage(const std::vector<store::UsageRecord>&) override { return OkStatus(); }
  Result<std::map<std::string, store::SpendSums>> SpendFor(
      const std::vector<std::string>& lineages, const store::DayBounds&) override {
    ++spend_for_calls;
    std::map<std::string, store::SpendSums> out;
    for (const std::string& lineage : lineages) out[lineage] = sums;
    return out;
  }
  Result<MicroUsd> SpendSince(const std::string&, int64_t) override { return MicroUsd{0}; }
  Result<std::vector<store::DailyUsage>> DailySeries(const std::string& lineage,
                                                      int64_t from_day) override {
    asked_lineage = lineage;
    std::vector<store::DailyUsage> out;
    for (const store::DailyUsage& day : days) {
      if (day.day >= from_day) out.push_back(day);
    }
    return out;
  }
  Status ForEachCallBetween(UnixMillis, UnixMillis,
                            const std::function<void(const store::CallInWindow&)>&) override {
    return OkStatus();
  }
  Result<std::vector<store::UsageRecord>> RecentUsage(const std::string&, int64_t) override {
    return std::vector<store::UsageRecord>{};
  }
  int spend_for_calls = 0;
  store::SpendSums sums;  // what SpendFor answers for every lineage
  std::vector<store::DailyUsage> days;  // what DailySeries holds, oldest first
  std::string asked_lineage;
};

// Adds nothing (a key nobody has called yet) and counts the questions.
class CountingLive final : public LiveUsage {
 public:
  Result<std::unordered_map<std::string, keys::UsageTotals>> ReadWithUnflushed(
      const std::vector<std::string>& lineages, UnixMillis,
      const std::function<Status()>& read_store) const override {
    ++calls;
    KG_RETURN_IF_ERROR(read_store());
    std::unordered_map<std::string, keys::UsageTotals> out;
    for (const std::string& lineage : lineages) {
      if (unflushed) out[lineage] = *unflushed;
    }
    return out;
  }
  void AddWindows(const keys::ServiceKey&, UnixMillis, keys::UsageTotals*) const override {
    ++window_calls;
  }
  std::string RateLimitLines(const keys::ServiceKey&, UnixMillis) const override { return {}; }
  std::optional<keys::UsageTotals> unflushed;  // what every lineage adds, if set
  mutable int calls = 0;         // reads of the uncommitted spend
  mutable int window_calls = 0;  // reads of the windows
};

keys::ServiceKey FreshKey() {
  keys::ServiceKey key;
  key.hash = std::string(64, 'a');
  key.lineage = key.hash;
  key.org_id = "org_a";
  key.name = "fresh";
  key.created_at = kNow;
  key.guardrails.credit_limit = 5'000'000;
  key.guardrails.reset_interval = keys::ResetInterval::kMonthly;
  return key;
}

void ExpectSameView(const KeyView& a, const KeyView& b) {
  EXPECT_EQ(a.key.hash, b.key.hash);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.budget_resets_at, b.budget_resets_at);
  EXPECT_EQ(a.limit_remaining, b.limit_remaining);
  EXPECT_EQ(a.usage.total, b.usage.total);
  EXPECT_EQ(a.usage.daily, b.usage.daily);
  EXPECT_EQ(a.usage.weekly, b.usage.weekly);
  EXPECT_EQ(a.usage.monthly, b.usage.monthly);
  EXPECT_EQ(a.usage.current_period, b.usage.current_period);
  EXPECT_EQ(a.usage.tokens_current_minute, b.usage.tokens_current_minute);
  EXPECT_EQ(a.usage.requests_current_minute, b.usage.requests_current_minute);
}

// A key created by the request being answered reads exactly as View() would show it, without
// asking the usage store or the live figures.
TEST(KeyViewTest, ViewOfANewKeyIsTheViewWithoutAskingForUsage) {
  ManualClock clock(kNow);
  CountingUsage usage;
  CountingLive live;
  KeyViewer viewer(usage, clock);
  viewer.SetLiveUsage(&live);

  auto asked = viewer.View(FreshKey());
  ASSERT_TRUE(asked.ok()) << asked.error().message;
  EXPECT_EQ(usage.spend_for_calls, 1);
  EXPECT_EQ(live.calls, 1);
  EXPECT_EQ(live.window_calls, 1);

  const KeyView fresh = viewer.ViewNew(FreshKey());
  EXPECT_EQ(usage.spend_for_calls, 1);
  EXPECT_EQ(live.calls, 1);
  EXPECT_EQ(live.window_calls, 1);
  ExpectSameView(fresh, *asked);
  EXPECT_EQ(fresh.limit_remaining, std::optional<MicroUsd>(5'000'000));
  EXPECT_EQ(fresh.status, keys::KeyStatus::kActive);
  EXPECT_TRUE(fresh.budget_resets_at.has_value());
}

// Audit AA: the stored totals (each day's at most kMostUsageOfADay) plus spend not stored yet
// (saturated at the int64 maximum by an absurd call) wrapped negative in every dialect's view.
TEST(KeyViewTest, StoredAndUnflushedSpendAddUpWithoutWrapping) {
  ManualClock clock(kNow);
  CountingUsage usage;
  usage.sums = {store::kMostUsageOfADay, store::kMostUsageOfADay, store::kMostUsageOfADay,
                store::kMostUsageOfADay};
  CountingLive live;
  constexpr MicroUsd kMax = std::numeric_limits<MicroUsd>::max();
  live.unflushed = keys::UsageTotals{};
  live.unflushed->total = live.unflushed->daily = kMax;
  live.unflushed->weekly = live.unflushed->monthly = kMax;
  KeyViewer viewer(usage, clock);
  viewer.SetLiveUsage(&live);
  auto view = viewer.View(FreshKey());
  ASSERT_TRUE(view.ok()) << view.error().message;
  EXPECT_EQ(view->usage.total, kMax);
  EXPECT_EQ(view->usage.daily, kMax);
  EXPECT_EQ(view->usage.weekly, kMax);
  EXPECT_EQ(view->usage.monthly, kMax);
  EXPECT_EQ(view->usage.current_period, kMax);
  EXPECT_EQ(view->limit_remaining, std::optional<MicroUsd>(0));
}

// A key's spend of its budget period is the sum of its reset interval (audit Y: the daily one
// could have read the week's, and no test said otherwise), and what remains of its limit.
TEST(KeyViewTest, TheCurrentPeriodIsTheKeysResetInterval) {
  ManualClock clock(kNow);
  CountingUsage usage;
  usage.sums = {1000, 1, 10, 100};  // total, since the day, the week, the month
  KeyViewer viewer(usage, clock);
  const std::pair<keys::ResetInterval, MicroUsd> cases[] = {
      {keys::ResetInterval::kDaily, 1},
      {keys::ResetInterval::kWeekly, 10},
      {keys::ResetInterval::kMonthly, 100},
      {keys::ResetInterval::kNever, 1000}};
  for (const auto& [interval, spend] : cases) {
    keys::ServiceKey key = FreshKey();
    key.guardrails.reset_interval = interval;
    auto view = viewer.View(key);
    ASSERT_TRUE(view.ok()) << view.error().message;
    EXPECT_EQ(view->usage.current_period, spend) << static_cast<int>(interval);
    EXPECT_EQ(view->limit_remaining, std::optional<MicroUsd>(5'000'000 - spend));
    EXPECT_EQ(view->usage.total, 1000);
  }
}

// The console's chart: a row for every day of the range, oldest first, today last, the stored
// days in their places and zeros between them; asked of the key's lineage.
TEST(KeyViewerTest, DailyHasARowForEveryDayOfTheRange) {
  CountingUsage usage;
  const int64_t today = kNow / 86'400'000 + 2;  // two days after kNow, at 15:00 UTC
  ManualClock clock(today * 86'400'000 + 15 * 3'600'000);
  usage.days = {{today - 9, 900, 9, 90}, {today - 3, 300, 3, 30}, {today - 1, 100, 1, 10}};
  KeyViewer viewer(usage, clock);
  keys::ServiceKey key = FreshKey();
  key.lineage = std::string(64, 'b');  // a rotated key's: its predecessors' calls count
  auto daily = viewer.Daily(key, 5);
  ASSERT_TRUE(daily.ok());
  EXPECT_EQ(usage.asked_lineage, key.lineage);
  ASSERT_EQ(daily->size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ((*daily)[i].day, today - 4 + static_cast<int64_t>(i));
  EXPECT_EQ((*daily)[0].cost, 0);
  EXPECT_EQ((*daily)[1].cost, 300);  // today - 3
  EXPECT_EQ((*daily)[1].requests, 3);
  EXPECT_EQ((*daily)[2].cost, 0);
  EXPECT_EQ((*daily)[3].cost, 100);  // today - 1
  EXPECT_EQ((*daily)[4].cost, 0);    // today, nothing yet
  auto one = viewer.Daily(key, 1);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].day, today);
}

}  // namespace
}  // namespace keygate::dialects
