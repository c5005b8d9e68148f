// Checkpoints of the store's WAL, kept off the acknowledgement path of the group-commit writer.
//
// SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold: the writer
// thread copies the WAL's pages into the database file and fsyncs it while the whole batch it
// just committed still waits for its answer. Instead the write connection's WAL hook only
// records the WAL's length and, past `background_frames` (and again after every further half
// of that), wakes a thread of this class that checkpoints (PASSIVE: it never blocks the writer
// or the readers) on a connection of its own.
// While writes keep coming, such a checkpoint rarely copies the very last frames, and the WAL
// can only start over once every frame is copied; so once the WAL reaches `writer_frames`, the
// writer itself runs one PASSIVE checkpoint right after a batch has been acknowledged (see
// GroupCommitWriter's after_batch): by then the background thread has copied nearly all of
// it, nothing new is written meanwhile, and the next write transaction restarts the WAL.
//
// Durability is unchanged: a write is acknowledged once its WAL frames are fsynced, which does
// not depend on checkpoints; a checkpoint fsyncs the database file (synchronous=FULL on its
// connection) before SQLite lets the WAL be reused.
//
// Thread safety: OnCommit runs on the writer thread (from inside its COMMIT) and AfterBatch
// on the writer thread; Stop() from any thread. The object must outlive the write connection
// it is attached to.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "common/status.h"
#include "store/sqlite/sqlite_connection.h"

namespace keygate::store::sqlite {

class WalCheckpointer {
 public:
  // Takes `conn`, its own read-write connection to the store's file, and starts the
  // background thread. REQUIRES: 1 <= background_frames <= writer_frames.
  WalCheckpointer(std::unique_ptr<Connection> conn, int64_t background_frames,
                  int64_t writer_frames);
  // Stop().
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Replaces SQLite's automatic checkpoint on the write connection `writer` with this class.
  void Attach(Connection& writer);

  // For GroupCommitWriter's after_batch: checkpoints on `writer` if the WAL has reached
  // writer_frames.
  void AfterBatch(Connection& writer);

  // Stops the thread (after the checkpoint it may be running) and closes its connection.
  // Later commits still record the WAL's length but start nothing. Idempotent.
  void Stop();

  // Checkpoints run so far by the background thread and by the writer (for tests).
  int64_t background_checkpoints() const { return background_runs_.load(); }
  int64_t writer_checkpoints() const { return writer_runs_.load(); }

 private:
  // sqlite3_wal_hook callback: `frames` is the WAL's length after the commit.
  static int OnCommit(void* self, sqlite3* db, const char* schema, int frames);
  void Loop();

  std::unique_ptr<Connection> conn_;  // used only by the thread
  const int64_t background_frames_;
  const int64_t writer_frames_;
  const int64_t background_step_;  // new frames between two background passes
  int64_t next_request_frames_;    // touched only on the writer thread (OnCommit)

  std::atomic<int64_t> wal_frames_{0};  // the WAL's length at the last commit
  std::atomic<int64_t> background_runs_{0};
  std::atomic<int64_t> writer_runs_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;  // guarded by mu_
  bool stopping_ = false;   // guarded by mu_

  std::mutex stop_mu_;  // serializes Stop() callers around join()
  std::thread thread_;
};

}  // namespace keygate::store::sqlite
