#include "store/sqlite/group_commit_writer.h"

#include <exception>
#include <string>
#include <utility>

#include "common/thread_name.h"

namespace keygate::store::sqlite {
namespace {

constexpr const char* kBegin = "BEGIN IMMEDIATE";
constexpr const char* kCommit = "COMMIT";
constexpr const char* kRollback = "ROLLBACK";
constexpr const char* kSavepoint = "SAVEPOINT kg_write";
constexpr const char* kRelease = "RELEASE kg_write";
constexpr const char* kRollbackToSavepoint = "ROLLBACK TO kg_write";

Status Invoke(const GroupCommitWriter::WriteFn& fn, Connection& conn) {
  // The writer thread is a boundary: an exception escaping it would terminate the process.
  try {
    return fn(conn);
  } catch (const std::exception& e) {
    return Error::Internal(std::string("store write threw: ") + e.what());
  } catch (...) {
    return Error::Internal("store write threw a non-standard exception");
  }
}

}  // namespace

GroupCommitWriter::GroupCommitWriter(std::unique_ptr<Connection> conn, size_t max_batch,
                                     AfterBatchFn after_batch, VerifyFn verify)
    : conn_(std::move(conn)),
      max_batch_(max_batch == 0 ? 1 : max_batch),
      after_batch_(std::move(after_batch)),
      verify_(std::move(verify)),
      thread_([this] { Loop(); }) {}

GroupCommitWriter::~GroupCommitWriter() { Stop(); }

Status GroupCommitWriter::Submit(const WriteFn& fn) {
  Pending pending;
  pending.fn = &fn;
  return Enqueue(&pending);
}

Status GroupCommitWriter::SubmitAlone(const WriteFn& fn) {
  Pending pending;
  pending.fn = &fn;
  pending.alone = true;
  return Enqueue(&pending);
}

Status GroupCommitWriter::Enqueue(Pending* pending) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return Error::Unavailable("the sqlite store is closed");
    queue_.push_back(pending);
    // The writer only sleeps when the queue is empty, so only the first arrival must wake it.
    if (queue_.size() == 1) work_cv_.notify_one();
  }
  {
    std::unique_lock<std::mutex> lock(pending->mu);
    pending->cv.wait(lock, [pending] { return pending->done; });
  }
  // Our share of the batch's wake-ups. The waiters named here cannot leave before we wake
  // them, so the pointers are still good.
  for (Pending* next : pending->wake_next) {
    if (next != nullptr) Wake(next);
  }
  return std::move(pending->status);
}

void GroupCommitWriter::Wake(Pending* p) {
  std::lock_guard<std::mutex> lock(p->mu);
  p->done = true;
  p->cv.notify_one();
}

void GroupCommitWriter::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  conn_.reset();
}

GroupCommitWriter::Stats GroupCommitWriter::GetStats() const {
  return Stats{batches_.load(), writes_.load(), failed_batches_.load()};
}

size_t GroupCommitWriter::QueueDepth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void GroupCommitWriter::Loop() {
  NameThisThread("kg-sql-writer");
  std::vector<Pending*> batch;
  batch.reserve(max_batch_);
  while (TakeBatch(&batch)) {
    RunBatch(batch);
    Complete(batch);
    batch.clear();
    if (after_batch_) after_batch_(*conn_);
  }
}

bool GroupCommitWriter::TakeBatch(std::vector<Pending*>* batch) {
  std::unique_lock<std::mutex> lock(mu_);
  work_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
  // On stop the queue is drained first: every write accepted before Stop() still runs.
  if (queue_.empty()) return false;
  if (queue_.front()->alone) {
    batch->push_back(queue_.front());
    queue_.pop_front();
    return true;
  }
  while (!queue_.empty() && batch->size() < max_batch_ && !queue_.front()->alone) {
    batch->push_back(queue_.front());
    queue_.pop_front();
  }
  return true;
}

void GroupCommitWriter::RunBatch(const std::vector<Pending*>& batch) {
  if (batch.front()->alone) {
    batch.front()->status = Invoke(*batch.front()->fn, *conn_);
    return;
  }
  batches_.fetch_add(1, std::memory_order_relaxed);
  writes_.fetch_add(static_cast<int64_t>(batch.size()), std::memory_order_relaxed);
  auto fail_all = [&](const std::string& what, const Error& cause) {
    failed_batches_.fetch_add(1, std::memory_order_relaxed);
    for (Pending* p : batch) {
      Error failed = Error::Unavailable(what + ": " + cause.message);
      failed.reason = cause.reason;  // kStoreFilesRemoved, say: what a client may do next
      p->status = std::move(failed);
    }
  };

  // Not one write to files no restart reads: the checkpoint at close would copy them into the
  // database anyway, where a restart finds writes their callers were told failed (audit V).
  if (verify_) {
    Status verified = verify_();
    if (!verified.ok()) return fail_all("not applied", verified.error());
  }
  Status begun = RunStatement(kBegin);
  if (!begun.ok()) return fail_all("cannot begin a write transaction", begun.error());
  for (Pending* p : batch) {
    p->status = RunInSavepoint(*p->fn);
    if (sqlite3_get_autocommit(conn_->db()) != 0) {
      // SQLite abandoned the whole transaction (I/O error, disk full): the writes before this
      // one are gone too, so nobody in the batch may be told OK.
      const Error cause =
          p->status.ok() ? Error::Unavailable("transaction ended early") : p->status.error();
      return fail_all("write transaction rolled back", cause);
    }
  }
  Status committed = RunStatement(kCommit);
  if (committed.ok()) {
    if (!verify_) return;
    Status verified = verify_();
    if (!verified.ok()) {
      fail_all("committed while the store's files were going (a restart may or may not find it)",
               verified.error());
    }
    return;
  }
  // A COMMIT refused by a deferred constraint leaves the transaction open.
  if (sqlite3_get_autocommit(conn_->db()) == 0) (void)RunStatement(kRollback);
  fail_all("commit failed", committed.error());
}

Status GroupCommitWriter::RunInSavepoint(const WriteFn& fn) {
  KG_RETURN_IF_ERROR(RunStatement(kSavepoint));
  Status status = Invoke(fn, *conn_);
  if (status.ok()) {
    Status released = RunStatement(kRelease);
    if (released.ok()) return released;
    status = std::move(released);
  }
  // Undo only this write; the rest of the batch goes on. Failures here surface through the
  // autocommit check in RunBatch.
  (void)RunStatement(kRollbackToSavepoint);
  (void)RunStatement(kRelease);
  return status;
}

Status GroupCommitWriter::RunStatement(const char* sql) {
  auto stmt = conn_->Prepare(sql);
  if (!stmt.ok()) return stmt.error();
  return stmt->Run();
}

void GroupCommitWriter::Complete(const std::vector<Pending*>& batch) {
  // A binary tree over the batch: the writer wakes 0 and 1, waiter i wakes 2i+2 and 2i+3.
  // Every link is set before the first wake-up, so each waiter reads its own under its mutex.
  const size_t n = batch.size();
  for (size_t i = 0; i < n; ++i) {
    for (size_t c = 0; c < 2; ++c) {
      const size_t child = 2 * i + 2 + c;
      batch[i]->wake_next[c] = child < n ? batch[child] : nullptr;
    }
  }
  // The roots are read from the batch (the writer's vector), never from a woken waiter.
  Wake(batch[0]);
  if (n > 1) Wake(batch[1]);
}

}  // namespace keygate::store::sqlite
