#include "dialects/common/key_view.h"

#include <algorithm>
#include <map>
#include <utility>

#include "common/saturating.h"
#include "limits/period.h"

namespace keygate::dialects {
namespace {

constexpr int64_t kMsPerDay = 86'400'000;

int64_t DayOf(UnixMillis ms) { return ms / kMsPerDay; }

MicroUsd CurrentPeriodSpend(keys::ResetInterval interval, const store::SpendSums& sums) {
  switch (interval) {
    case keys::ResetInterval::kDaily: return sums.since_day;
    case keys::ResetInterval::kWeekly: return sums.since_week;
    case keys::ResetInterval::kMonthly: return sums.since_month;
    case keys::ResetInterval::kNever: return sums.total;
  }
  return sums.total;
}

}  // namespace

Result<std::vector<KeyView>> KeyViewer::Views(std::vector<keys::ServiceKey> keys) const {
  const UnixMillis now = clock_.NowMs();
  store::DayBounds bounds;
  bounds.today = DayOf(limits::PeriodStart(keys::ResetInterval::kDaily, now));
  bounds.week_start = DayOf(limits::PeriodStart(keys::ResetInterval::kWeekly, now));
  bounds.month_start = DayOf(limits::PeriodStart(keys::ResetInterval::kMonthly, now));
  std::vector<std::string> lineages;
  lineages.reserve(keys.size());
  for (const keys::ServiceKey& key : keys) lineages.push_back(keys::LineageOf(key));
  std::sort(lineages.begin(), lineages.end());
  lineages.erase(std::unique(lineages.begin(), lineages.end()), lineages.end());
  std::map<std::string, store::SpendSums> sums;
  auto read_store = [&]() -> Status {
    auto read = usage_.SpendFor(lineages, bounds);
    if (!read.ok()) return read.error();
    sums = std::move(*read);
    return OkStatus();
  };
  std::unordered_map<std::string, keys::UsageTotals> unflushed;
  if (live_ != nullptr) {
    // The store and the records not in it yet, read together: a record counts once.
    auto live = live_->ReadWithUnflushed(lineages, now, read_store);
    if (!live.ok()) return live.error();
    unflushed = std::move(*live);
  } else {
    KG_RETURN_IF_ERROR(read_store());
  }

  std::vector<KeyView> views;
  views.reserve(keys.size());
  for (keys::ServiceKey& key : keys) {
    const std::string& lineage = keys::LineageOf(key);
    store::SpendSums s = sums[lineage];
    if (const auto it = unflushed.find(lineage); it != unflushed.end()) {
      // Saturating: each of them may be at its end already (audit AA: the sum wrapped negative).
      s.total = SaturatingAdd(s.total, it->second.total);
      s.since_day = SaturatingAdd(s.since_day, it->second.daily);
      s.since_week = SaturatingAdd(s.since_week, it->second.weekly);
      s.since_month = SaturatingAdd(s.since_month, it->second.monthly);
    }
    views.push_back(Build(std::move(key), s, now, /*add_live=*/true));
  }
  return views;
}

KeyView KeyViewer::Build(keys::ServiceKey key, const store::SpendSums& s, UnixMillis now,
                         bool add_live) const {
  KeyView view;
  view.usage.total = s.total;
  view.usage.daily = s.since_day;
  view.usage.weekly = s.since_week;
  view.usage.monthly = s.since_month;
  view.usage.current_period = CurrentPeriodSpend(key.guardrails.reset_interval, s);
  if (add_live && live_ != nullptr) live_->AddWindows(key, now, &view.usage);
  view.status = keys::StatusAt(key, now);
  view.budget_resets_at = limits::NextReset(key.guardrails.reset_interval, now);
  if (key.guardrails.credit_limit) {
    view.limit_remaining =
        std::max<MicroUsd>(0, *key.guardrails.credit_limit - view.usage.current_period);
  }
  view.key = std::move(key);
  return view;
}

KeyView KeyViewer::ViewNew(keys::ServiceKey key) const {
  // Nothing can have used the key yet (its secret is in this very answer), so there is no
  // live spend or traffic to add either: the data plane would only ask the store again.
  return Build(std::move(key), store::SpendSums{}, clock_.NowMs(), /*add_live=*/false);
}

Result<std::vector<store::DailyUsage>> KeyViewer::Daily(const keys::ServiceKey& key,
                                                        int64_t days) const {
  const int64_t today = limits::DayIndex(clock_.NowMs());
  const int64_t first = today - days + 1;
  auto stored = usage_.DailySeries(keys::LineageOf(key), first);
  if (!stored.ok()) return stored.error();
  std::vector<store::DailyUsage> out;
  out.reserve(static_cast<size_t>(days));
  auto next = stored->begin();
  for (int64_t day = first; day <= today; ++day) {
    while (next != stored->end() && next->day < day) ++next;
    if (next != stored->end() && next->day == day) {
      out.push_back(*next);
    } else {
      out.push_back(store::DailyUsage{day, 0, 0, 0});
    }
  }
  return out;
}

Result<std::vector<store::UsageRecord>> KeyViewer::Recent(const keys::ServiceKey& key,
                                                          int64_t limit) const {
  return usage_.RecentUsage(keys::LineageOf(key), limit);
}

Result<KeyView> KeyViewer::View(keys::ServiceKey key) const {
  std::vector<keys::ServiceKey> one;
  one.push_back(std::move(key));
  auto views = Views(std::move(one));
  if (!views.ok()) return views.error();
  return std::move(views->front());
}

}  // namespace keygate::dialects
