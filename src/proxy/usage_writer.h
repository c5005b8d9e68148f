// Writes the data plane's usage records to the UsageStore in batches, off the hot path (spec §5:
// "usage rows are written in batches, at most 100 ms behind"). A call only appends its record
// to a vector under a mutex; a thread of the writer's own commits everything pending once the
// oldest record has waited flush_interval, in one UsageStore::AppendUsage transaction.
//
// If the store fails, the batch is kept and retried after retry_interval (records past
// max_pending are dropped oldest first and counted in an error log line: memory stays bounded
// while the store is down). Lag() says how far behind the store is, so that the data plane can
// stop admitting calls whose spend could not be recorded. Stop() writes everything still
// pending before it returns, retrying a failing store for up to stop_retry_for; what it could
// not store is LostAtStop().
//
// Calls in flight are kept too (decision 0011, "A crash"): Open() notes an admitted call at its
// reservation, the Append() of its record closes it. A batch also stores the calls then open
// for longer than flush_interval and forgets the stored ones that closed since, so that a crash
// loses at most one interval of admissions; calls that open and close within an interval,
// nearly all of them, never reach the store.
//
// The thread also runs an optional periodic task (the data plane's limiter housekeeping).
//
// Thread safety: every method may be called from any thread. Start() and Stop() at most once
// each, in that order.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"  // store/usage_store.h uses UnixMillis without including it
#include "common/log.h"
#include "config/config.h"
#include "keys/model.h"
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
  // How long Stop() keeps retrying a store that refuses the last records (a lock held by
  // another process, a full disk being cleared) before it gives them up.
  std::chrono::milliseconds stop_retry_for{5'000};
  size_t max_pending = 1'000'000;
  std::chrono::milliseconds task_interval{60'000};  // the periodic task's period
};

// A call in flight as Open() notes it, at its reservation: nothing but pointers and numbers to
// copy on every call (the record is made only if the call is stored). `key` and `model` are
// the caller's, which must keep them alive until the Append() that closes the call (a model
// call holds both, and closes its entry even when dropped).
struct OpenCallInfo {
  const keys::ServiceKey* key = nullptr;
  const config::ModelConfig* model = nullptr;
  std::string request_id;
  UnixMillis at = 0;  // admission
  int64_t prompt_tokens = 0;      // reserved
  int64_t completion_tokens = 0;  // reserved
  MicroUsd cost = 0;              // reserved

  // The call as a usage record charged at its reservation (status 0: no answer recorded).
  store::UsageRecord Record() const;
};

// What a stop could not store: usage records (and their cost), and calls still open that were
// never kept (which the next start cannot charge).
struct UnstoredUsage {
  uint64_t records = 0;
  MicroUsd cost = 0;
  uint64_t open_calls = 0;
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

  // Notes a call admitted now; returns its id for the Append() that closes it. Never blocks on
  // the store.
  uint64_t Open(OpenCallInfo call);

  // Queues `record`, closing the open call `open_id` (0: none). Never blocks on the store.
  void Append(store::UsageRecord record, uint64_t open_id = 0);

  // Calls noted by Open() and not closed yet.
  size_t open_calls() const;

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

  // The spend of `lineage` from `period_start` on, for seeding a budget: what `read_store`
  // answers (the records the store has committed), plus the records appended before this call
  // and not committed yet, minus those appended after it that a batch committed before the
  // read: each record appended before the call counts once, and none appended after it (its
  // call settled after the seed began, which the limiter adds itself). A read that a batch
  // crossed is made again, with batches held off after three. Waits while a batch commits.
  Result<MicroUsd> SpendSince(const std::string& lineage, UnixMillis period_start,
                              const std::function<Result<MicroUsd>()>& read_store);

  // Records appended and not yet committed.
  size_t pending() const;

  // The management answers' read: calls `read_store` (the stored spend of `lineages`), then
  // returns the spend of each of them not committed yet (as Unflushed), so that every record is
  // counted once, in the store's answer or here (a read that a batch crossed is made again).
  // Best effort while a commit hangs or batches keep crossing the read (ReadBetweenBatches): a
  // view never holds usage up. A lineage with nothing pending has no entry.
  Result<std::unordered_map<std::string, UnflushedSpend>> ReadWithUnflushed(
      const std::vector<std::string>& lineages, UnixMillis day_start, UnixMillis week_start,
      UnixMillis month_start, const std::function<Status()>& read_store);

  // SpendSince calls in progress (for tests).
  size_t seeds_in_progress() const;

  // How long the oldest record not committed yet has waited, as of `now` (zero when every
  // record is committed): at most a flush interval plus a commit while the store keeps up,
  // growing while it fails or hangs, whatever the writer is blocked in. Lock-free: the hot
  // path may ask on every call.
  std::chrono::nanoseconds Lag(std::chrono::steady_clock::time_point now) const;

  // What Stop() gave up storing (zeros when it stored everything).
  UnstoredUsage LostAtStop() const;

 private:
  void Loop(std::function<void()> task);
  // Writes the pending records. REQUIRES: `lock` holds mu_; it is released during the write.
  Status WriteBatch(std::unique_lock<std::mutex>& lock);
  // Stores the calls open for longer than flush_interval (every open call if `all`) and
  // forgets the stored ones whose closing record is committed. REQUIRES: as WriteBatch.
  Status WriteOpenCalls(std::unique_lock<std::mutex>& lock, bool all = false);
  // When the oldest call not stored yet is due to be, or time_point::max() if none; drops
  // the closed calls from the front of unstored_ first. REQUIRES: mu_ held.
  std::chrono::steady_clock::time_point NextOpenCallDue();
  // Notes what is still pending as lost by the stop. REQUIRES: mu_ held.
  void CountLostAtStop();
  // Notes the calls still open and never stored as lost by the stop. REQUIRES: mu_ held.
  void CountOpenCallsLostAtStop();

  // What the walks of the pending records read of each, kept beside it (same index): a walk
  // (once per management answer, ReadWithUnflushed; once per seed) runs under mu_, which
  // every model call takes to append, so it touches this entry instead of a whole record
  // (~300 bytes), and compares a lineage only where the hash matches.
  struct PendingCost {
    size_t lineage_hash = 0;
    UnixMillis at = 0;
    MicroUsd cost = 0;
    uint64_t closes = 0;  // the stored open call this record closes, once committed (0: none)
    uint64_t seq = 0;     // the record's place in the order of Append() calls
  };
  // Calls f(cost, record) for each pair of `costs` and `records` (in step by construction).
  template <class F>
  void ForEachCost(const std::vector<PendingCost>& costs,
                   const std::vector<store::UsageRecord>& records, F&& f) const;
  // Calls f(cost, record) for each record not committed yet (the batch being written, then the
  // pending ones); the second form f(cost) for those of `lineage`. REQUIRES: mu_ held.
  template <class F>
  void ForEachUnflushed(F&& f) const;
  template <class F>
  void ForEachUnflushed(const std::string& lineage, F&& f) const;
  // Adds `c` to the total and to each bucket it falls in.
  static void AddToBuckets(const PendingCost& c, UnixMillis day_start, UnixMillis week_start,
                           UnixMillis month_start, UnflushedSpend* spend);
  // Who reads: a budget's seed, which must count each record once (the promise rests on it), or
  // a management view, which must not wait long on the writer nor hold it off.
  enum class Reader { kSeed, kView };
  // Calls `read_store` with the lock released, again until no batch began during it, and
  // returns its status with `lock` held: the memory read then agrees with the store's answer.
  // A seed waits for a batch being committed and holds batches off after three tries; a view
  // waits for it 200 ms at most and takes its third read whatever crossed it.
  // REQUIRES: `lock` holds mu_.
  Status ReadBetweenBatches(std::unique_lock<std::mutex>& lock,
                            const std::function<Status()>& read_store, Reader reader);

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
  uint64_t appended_ = 0;  // guarded by mu_: records appended so far (the next one's seq)
  int readers_ = 0;        // guarded by mu_: reads holding batches off (ReadBetweenBatches)
  uint64_t batches_begun_ = 0;  // guarded by mu_: batches WriteBatch has begun
  // A SpendSince call in progress, and what the batches committed meanwhile of its lineage's
  // records appended after its mark (from then on in the store's answer, and the budget's).
  struct OpenSeed {
    const std::string& lineage;
    size_t lineage_hash = 0;
    UnixMillis period_start = 0;
    uint64_t mark = 0;
    MicroUsd committed_after_mark = 0;
  };
  std::vector<OpenSeed*> open_seeds_;  // guarded by mu_
  struct OpenEntry {
    OpenCallInfo call;
    std::chrono::steady_clock::time_point opened;
    bool stored = false;  // written by WriteOpenCalls (or being written)
  };
  std::unordered_map<uint64_t, OpenEntry> open_;  // guarded by mu_
  // Ids of open calls not stored yet, in the order they opened (ids only grow): the loop
  // looks at the front alone. Closed ones leave it when they reach the front.
  std::deque<uint64_t> unstored_;       // guarded by mu_
  std::vector<uint64_t> closed_stored_;  // guarded by mu_: stored, their record committed
  uint64_t next_open_id_ = 0;  // guarded by mu_; starts at the start time, so that ids stay
                               // unique across restarts
  std::chrono::steady_clock::time_point retry_at_ =
      std::chrono::steady_clock::time_point::min();  // guarded by mu_: after a failed write
  // When the loop's wait ends: Open() wakes it only if that is more than an interval away
  // (waking it on every call would cost each a system call and a thread switch).
  std::chrono::steady_clock::time_point loop_wakes_at_ =
      std::chrono::steady_clock::time_point::max();  // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  UnstoredUsage lost_at_stop_;  // guarded by mu_
  // steady_clock's count when the oldest record not committed arrived; 0: none. Written under
  // mu_ (set by the Append that finds nothing waiting, moved on by each committed batch).
  std::atomic<int64_t> unstored_since_{0};
  bool writing_now_ = false;  // guarded by mu_: a batch is being written (by one thread)
  std::thread thread_;
};

}  // namespace keygate::proxy
