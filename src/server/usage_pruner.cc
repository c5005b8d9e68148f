#include "server/usage_pruner.h"

#include "common/time_format.h"
#include "limits/period.h"

namespace keygate::server {

void UsagePruner::Tick() {
  if (options_.retention_days == 0) return;
  const int64_t tick_ns = clock_.MonotonicNs();
  if (!first_ && tick_ns < next_ns_) return;
  first_ = false;
  next_ns_ = tick_ns + options_.every_ns;
  // Only the cut is wall time.
  const UnixMillis before = clock_.NowMs() - options_.retention_days * limits::kMsPerDay;
  store::PrunedUsage total;
  for (int write = 0; write < options_.writes_per_tick; ++write) {
    Result<store::PrunedUsage> pruned = prune_(before, options_.records_per_write);
    if (!pruned.ok()) {
      log_.Warn("usage.prune_failed", {{"error", pruned.error().message}});
      break;  // tried again at the next minute's tick
    }
    total.batches += pruned->batches;
    total.records += pruned->records;
    if (!pruned->more) break;
    if (write + 1 == options_.writes_per_tick) next_ns_ = tick_ns;  // more left: the next tick
  }
  if (total.batches > 0) {
    log_.Info("usage.records_pruned", {{"records", total.records},
                                       {"older_than", FormatTimestamp(before)},
                                       {"retention_days", options_.retention_days}});
  }
}

}  // namespace keygate::server
