#include "proxy/live_usage.h"

#include "limits/period.h"
#include "proxy/guardrails.h"

namespace keygate::proxy {

std::string RateLimitLinesFor(limits::Limiter& limiter, const keys::ServiceKey& key,
                              UnixMillis now) {
  const keys::Guardrails& guardrails = key.guardrails;
  if (!guardrails.rpm_limit.has_value() && !guardrails.tpm_limit.has_value()) return {};
  const limits::WindowPair windows =
      limiter.Windows(keys::LineageOf(key), now, guardrails.rpm_limit, guardrails.tpm_limit);
  return RateLimitFigures{windows.requests, windows.tokens, now}.Lines();
}

std::string LimiterLiveUsage::RateLimitLines(const keys::ServiceKey& key, UnixMillis now) const {
  return RateLimitLinesFor(limiter_, key, now);
}

void LimiterLiveUsage::AddLive(const keys::ServiceKey& key, UnixMillis now,
                               keys::UsageTotals* totals) const {
  const std::string& lineage = keys::LineageOf(key);
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
