#include "store/sqlite/wal_checkpointer.h"

#include <utility>

#include "common/thread_name.h"

namespace keygate::store::sqlite {
namespace {

// A failed or partial checkpoint is not an error of any write: SQLite tries again at the
// next one, exactly as with its automatic checkpoints, whose result nobody sees either.
void CheckpointPassive(sqlite3* db) {
  int log_frames = 0;
  int copied_frames = 0;
  (void)sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                  &copied_frames);
}

}  // namespace

WalCheckpointer::WalCheckpointer(std::unique_ptr<Connection> conn, int64_t background_frames,
                                 int64_t writer_frames)
    : conn_(std::move(conn)),
      background_frames_(background_frames < 1 ? 1 : background_frames),
      writer_frames_(writer_frames < background_frames_ ? background_frames_ : writer_frames),
      background_step_(background_frames_ / 2 < 1 ? 1 : background_frames_ / 2),
      next_request_frames_(background_frames_),
      thread_([this] { Loop(); }) {}

WalCheckpointer::~WalCheckpointer() { Stop(); }

void WalCheckpointer::Attach(Connection& writer) {
  // Replaces the automatic checkpoint (sqlite3_wal_autocheckpoint is itself a WAL hook).
  sqlite3_wal_hook(writer.db(), &WalCheckpointer::OnCommit, this);
}

int WalCheckpointer::OnCommit(void* self, sqlite3* /*db*/, const char* /*schema*/, int frames) {
  auto* checkpointer = static_cast<WalCheckpointer*>(self);
  checkpointer->wal_frames_.store(frames, std::memory_order_relaxed);
  // The WAL started over: the first checkpoint is due at background_frames again.
  if (frames < checkpointer->next_request_frames_ - checkpointer->background_step_) {
    checkpointer->next_request_frames_ = checkpointer->background_frames_;
  }
  if (frames < checkpointer->next_request_frames_) return SQLITE_OK;
  // One pass per background_step_ new frames: a pass copies every page written since the
  // last one, so passes after every commit would copy the same hot pages over and over.
  checkpointer->next_request_frames_ = frames + checkpointer->background_step_;
  std::lock_guard<std::mutex> lock(checkpointer->mu_);
  if (!checkpointer->requested_ && !checkpointer->stopping_) {
    checkpointer->requested_ = true;
    checkpointer->cv_.notify_one();
  }
  return SQLITE_OK;
}

void WalCheckpointer::AfterBatch(Connection& writer) {
  if (wal_frames_.load(std::memory_order_relaxed) < writer_frames_) return;
  // Until the next commit reports the WAL's new length, there is nothing more to do.
  wal_frames_.store(0, std::memory_order_relaxed);
  writer_runs_.fetch_add(1, std::memory_order_relaxed);
  CheckpointPassive(writer.db());
}

void WalCheckpointer::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  conn_.reset();
}

void WalCheckpointer::Loop() {
  NameThisThread("kg-checkpoint");
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return requested_ || stopping_; });
      if (stopping_) return;
      requested_ = false;
    }
    background_runs_.fetch_add(1, std::memory_order_relaxed);
    CheckpointPassive(conn_->db());
  }
}

}  // namespace keygate::store::sqlite
