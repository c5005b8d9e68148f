// Group commit for the SQLite store (spec §5: a write is durable before it is acknowledged;
// thousands of durable writes per second).
//
// Every write of the store runs on one thread that owns the only write connection. A caller
// submits a closure over that connection and blocks until its batch is done. The thread takes
// everything queued (up to `max_batch`), runs BEGIN IMMEDIATE, runs each write inside its own
// SAVEPOINT (a failing write is rolled back to its savepoint and gets its own error; the
// others still commit), then one COMMIT, which with synchronous=FULL is one fsync for the
// whole batch, and only then wakes every waiter of the batch.
//
// Waking is spread over the waiters: the writer wakes the first two of a batch and each woken
// waiter wakes two more before it returns (a binary tree over the batch), so the writer thread
// spends its time on SQL rather than on one futex wake-up per waiter, and the next batch
// starts at once. Each waiter has its own mutex, so the wake-ups never queue on the writer's.
//
// An optional `after_batch` callback runs on the writer thread after every batch has been
// acknowledged (the store uses it to checkpoint the WAL off the acknowledgement path). An
// optional `verify` check (the store's files are still the ones a restart reads) runs before
// each batch and after its COMMIT, before anyone is told. Failed before, the batch is not
// run: "not applied". Failed after (the files went in between), the batch fails too, though
// it may be in the database after a restart (the close's checkpoint may copy it there).
//
// Thread safety: Submit() may be called from any thread. Closures run on the writer thread,
// one at a time, while their submitter is blocked, so they may use the submitter's locals.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/status.h"
#include "store/sqlite/sqlite_connection.h"

namespace keygate::store::sqlite {

class GroupCommitWriter {
 public:
  // A write: runs statements on the write connection inside its savepoint. Returning an
  // error rolls back everything it did.
  using WriteFn = std::function<Status(Connection&)>;

  struct Stats {
    int64_t batches = 0;         // transactions committed or attempted
    int64_t writes = 0;          // closures run
    int64_t failed_batches = 0;  // transactions that could not begin or commit
  };

  // Runs on the writer thread after a batch's waiters have been released.
  using AfterBatchFn = std::function<void(Connection&)>;
  // Runs on the writer thread before each batch (an error: the batch is not run) and after its
  // COMMIT (an error fails the batch).
  using VerifyFn = std::function<Status()>;

  // Takes ownership of `conn` (opened read-write, in WAL mode) and starts the writer thread.
  // REQUIRES: max_batch >= 1.
  GroupCommitWriter(std::unique_ptr<Connection> conn, size_t max_batch,
                    AfterBatchFn after_batch = nullptr, VerifyFn verify = nullptr);
  // Stop().
  ~GroupCommitWriter();
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  // Runs `fn` in the next batch and blocks until that batch is durable or has failed.
  // Returns OK once the batch committed (fsynced); `fn`'s own error if it failed (only its
  // savepoint is rolled back); Unavailable if the batch's transaction could not begin or
  // commit, or SQLite rolled it back (nothing of the batch is durable); Unavailable if the
  // writer is stopped; Internal if `fn` threw.
  Status Submit(const WriteFn& fn);

  // Runs `fn` on the write connection between two batches, outside any transaction and
  // without `verify` (a checkpoint), and blocks until it has run. Returns `fn`'s status;
  // Unavailable if the writer is stopped; Internal if `fn` threw.
  Status SubmitAlone(const WriteFn& fn);

  // Runs every write already queued, then stops the thread and closes the connection.
  // Later Submit() calls return Unavailable. Idempotent.
  void Stop();

  Stats GetStats() const;
  // Writes waiting for the next batch (not counting the batch running now).
  size_t QueueDepth() const;

 private:
  // Lives on its submitter's stack until the submitter has been woken (done) and has woken
  // the waiters it is responsible for (`wake_next`).
  struct Pending {
    const WriteFn* fn = nullptr;
    bool alone = false;                       // SubmitAlone(): a batch of its own
    Status status;                            // set by the writer before any wake-up
    std::array<Pending*, 2> wake_next = {};   // set by the writer before any wake-up
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;  // guarded by mu
  };

  void Loop();
  Status Enqueue(Pending* pending);
  // Blocks until work or stop; moves up to max_batch_ queued writes into `batch`, or the one
  // submitted alone at the queue's front. Returns false when stopping with nothing left to do.
  bool TakeBatch(std::vector<Pending*>* batch);
  void RunBatch(const std::vector<Pending*>& batch);
  Status RunInSavepoint(const WriteFn& fn);
  Status RunStatement(const char* sql);
  void Complete(const std::vector<Pending*>& batch);
  // Marks `p` done and wakes it. `p` must not be touched afterwards: its submitter may return.
  static void Wake(Pending* p);

  std::unique_ptr<Connection> conn_;  // touched only by the writer thread while it runs
  const size_t max_batch_;
  const AfterBatchFn after_batch_;
  const VerifyFn verify_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::deque<Pending*> queue_;  // guarded by mu_
  bool stopping_ = false;       // guarded by mu_

  std::atomic<int64_t> batches_{0};
  std::atomic<int64_t> writes_{0};
  std::atomic<int64_t> failed_batches_{0};

  std::mutex stop_mu_;  // serializes Stop() callers around join()
  std::thread thread_;
};

}  // namespace keygate::store::sqlite
