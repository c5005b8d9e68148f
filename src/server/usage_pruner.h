// Forgets usage records past usage.retention_days (decision 0016, "Retention"): the background
// loop calls Tick() every half second; a tick prunes at most once a minute, in bounded writes.
//
// Thread safety: one thread calls Tick() (the App's background loop).
#pragma once

#include <cstdint>
#include <functional>
#include <utility>

#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "store/usage_store.h"

namespace keygate::server {

struct UsagePrunerOptions {
  int64_t retention_days = 0;  // 0: keep every record (Tick does nothing)
  // How often a tick prunes (monotonic: a step of the wall clock neither stops nor hurries it).
  int64_t every_ns = 60'000'000'000;
  // Each write forgets about this many records (each write is one of the store writer's group
  // commits, shared with usage and management writes: it stays short) ...
  int64_t records_per_write = 20'000;
  // ... and a tick makes at most this many; a longer backlog (a first start with retention)
  // goes on at the next tick rather than a minute later.
  int writes_per_tick = 10;
};

class UsagePruner {
 public:
  // One bounded write of store::UsageStore::PruneUsageBefore.
  using PruneFn =
      std::function<Result<store::PrunedUsage>(UnixMillis before, int64_t max_records)>;

  UsagePruner(UsagePrunerOptions options, PruneFn prune, const Clock& clock, Logger& log)
      : options_(options), prune_(std::move(prune)), clock_(clock), log_(log) {}

  void Tick();

 private:
  const UsagePrunerOptions options_;
  const PruneFn prune_;
  const Clock& clock_;
  Logger& log_;
  int64_t next_ns_ = 0;  // monotonic; 0: at the first tick
  bool first_ = true;
};

}  // namespace keygate::server
