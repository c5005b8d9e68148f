// Writes the data plane's usage records to the UsageStore in batches, off the hot path (spec §5:
// "usage rows are written in batches, at most 100 ms behind"). A call only appends its record
// to a vector under a mutex; a thread of the writer's own commits everything pending once the
// oldest record has waited flush_interval, in one UsageStore::AppendUsage transaction.
//
// If the store fails, the batch is kept and retried after retry_interval (records past
// max_pending are dropped oldest first and counted in an error log line: memory stays bounded
// while the store is down). Stop() writes everything still pending before it returns.
//
// The thread also runs an optional periodic task (the data plane's limiter housekeeping).
//
// Thread safety: every method may be called from any thread. Start() and Stop() at most once
// each, in that order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"  // store/usage_store.h uses UnixMillis without including it
#include "common/log.h"
#include "store/usage_store.h"

namespace keygate::proxy {

struct UsageWriterOptions {
  // How long the oldest pending record may wait before a batch is written (the setting
  // usage.flush_interval_ms, 1..50). With the write itself this keeps the store under 100 ms
  // behind.
  // Each batch has a fixed cost, its commit's disk sync above all (bench/usage_write_bench: on
  // this project's 2-core VM ~300 µs of CPU per batch against ~1 µs per record), which a
  // short interval pays a hundred times a second whatever the traffic: 10 ms cost a plain
  // call at one connection ~8 % more CPU than 50 ms (bench/proxy.sh, four paired runs,
  // 2026-12-06), and the latency tail did not get worse with the larger batches.
  std::chrono::milliseconds flush_interval{50};
  std::chrono::milliseconds retry_interval{500};  // after a failed write
  size_t max_pending = 1'000'000;
  std::chrono::milliseconds task_interval{60'000};  // the periodic task's period
};

// Spend recorded but not yet committed, per UTC bucket (see Unflushed()).
struct UnflushedSpend {
  MicroUsd total = 0;
  MicroUsd since_day = 0;
  MicroUsd since_week = 0;
  MicroUsd since_month = 0;
  MicroUsd since_period = 0;
};

class UsageWriter {
 public:
  // Neither reference is owned; both must outlive the writer.
  UsageWriter(store::UsageStore& store, Logger& log, UsageWriterOptions options = {});
  ~UsageWriter();  // Stop()s if running.
  UsageWriter(const UsageWriter&) = delete;
  UsageWriter& operator=(const UsageWriter&) = delete;

  // Starts the writing thread; `task` (may be empty) then runs on it every task_interval.
  void Start(std::function<void()> task = {});

  // Queues `record`. Never blocks on the store.
  void Append(store::UsageRecord record);

  // Writes everything pending, then stops the thread. Idempotent. Records appended after
  // Stop() are written by the next Flush() only.
  void Stop();

  // Writes everything pending now, on the calling thread (which blocks on the store).
  // Returns OK, or the store's error (the records then stay pending).
  Status Flush();

  // The cost of `lineage`'s records not yet committed: in total, and at or after each of the
  // given instants (day, week and month starts, and the key's own period start).
  UnflushedSpend Unflushed(const std::string& lineage, UnixMillis day_start,
                           UnixMillis week_start, UnixMillis month_start,
                           UnixMillis period_start) const;

  // Records appended and not yet committed.
  size_t pending() const;

 private:
  void Loop(std::function<void()> task);
  // Writes the pending records. REQUIRES: `lock` holds mu_; it is released during the write.
  Status WriteBatch(std::unique_lock<std::mutex>& lock);

  // What Unflushed() reads of a pending record, kept beside it (same index): its walk, once
  // per key of a management answer and under mu_, which every model call takes to append,
  // touches 24 bytes a record instead of a whole record (~300), and compares a lineage only
  // where the hash matches.
  struct PendingCost {
    size_t lineage_hash = 0;
    UnixMillis at = 0;
    MicroUsd cost = 0;
  };

  store::UsageStore& store_;
  Logger& log_;
  const UsageWriterOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<store::UsageRecord> pending_;  // guarded by mu_
  std::vector<store::UsageRecord> writing_;  // guarded by mu_: the batch being committed
  std::vector<PendingCost> pending_costs_;   // guarded by mu_: one per pending_ record
  std::vector<PendingCost> writing_costs_;   // guarded by mu_: one per writing_ record
  std::chrono::steady_clock::time_point oldest_pending_;  // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  bool writing_now_ = false;  // guarded by mu_: a batch is being written (by one thread)
  std::thread thread_;
};

}  // namespace keygate::proxy
