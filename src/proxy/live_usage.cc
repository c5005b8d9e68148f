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

Result<std::unordered_map<std::string, keys::UsageTotals>> LimiterLiveUsage::ReadWithUnflushed(
    const std::vector<std::string>& lineages, UnixMillis now,
    const std::function<Status()>& read_store) const {
  auto unflushed = writer_.ReadWithUnflushed(
      lineages, limits::PeriodStart(keys::ResetInterval::kDaily, now),
      limits::PeriodStart(keys::ResetInterval::kWeekly, now),
      limits::PeriodStart(keys::ResetInterval::kMonthly, now), read_store);
  if (!unflushed.ok()) return unflushed.error();
  std::unordered_map<std::string, keys::UsageTotals> out;
  for (const auto& [lineage, spend] : *unflushed) {
    keys::UsageTotals& totals = out[lineage];
    totals.total = spend.total;
    totals.daily = spend.since_day;
    totals.weekly = spend.since_week;
    totals.monthly = spend.since_month;
  }
  return out;
}

void LimiterLiveUsage::AddWindows(const keys::ServiceKey& key, UnixMillis now,
                                  keys::UsageTotals* totals) const {
  // The windows alone: a limiter snapshot would seed the lineage's budget from the store for
  // nothing.
  const limits::WindowUse use = limiter_.Use(keys::LineageOf(key), now);
  totals->requests_current_minute = use.requests;
  totals->tokens_current_minute = use.tokens;
}

}  // namespace keygate::proxy
