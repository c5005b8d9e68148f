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
  // The windows alone: the spend came from the store and the writer above, and a limiter
  // snapshot would seed the lineage's budget from the store for nothing.
  const limits::WindowUse use = limiter_.Use(lineage, now);
  totals->requests_current_minute = use.requests;
  totals->tokens_current_minute = use.tokens;
}

}  // namespace keygate::proxy
