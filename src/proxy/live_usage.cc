#include "proxy/live_usage.h"

#include "limits/period.h"

namespace keygate::proxy {

void LimiterLiveUsage::AddLive(const keys::ServiceKey& key, UnixMillis now,
                               keys::UsageTotals* totals) const {
  const std::string& lineage = key.lineage.empty() ? key.hash : key.lineage;
  const keys::ResetInterval interval = key.guardrails.reset_interval;
  const UnflushedSpend spend = writer_.Unflushed(
      lineage, limits::PeriodStart(keys::ResetInterval::kDaily, now),
      limits::PeriodStart(keys::ResetInterval::kWeekly, now),
      limits::PeriodStart(keys::ResetInterval::kMonthly, now), limits::PeriodStart(interval, now));
  totals->total += spend.total;
  totals->daily += spend.since_day;
  totals->weekly += spend.since_week;
  totals->monthly += spend.since_month;
  totals->current_period += spend.since_period;
  Result<limits::LimiterSnapshot> snapshot = limiter_.Snapshot(lineage, now, interval);
  if (!snapshot.ok()) return;
  totals->requests_current_minute = snapshot->requests_in_window;
  totals->tokens_current_minute = snapshot->tokens_in_window;
}

}  // namespace keygate::proxy
