#include "store/sqlite/read_pool.h"

#include <utility>

namespace keygate::store::sqlite {

ReadPool::Lease::~Lease() {
  if (conn_ != nullptr) pool_->Return(std::move(conn_));
}

ReadPool::ReadPool(std::string path, int max_connections, int busy_timeout_ms)
    : path_(std::move(path)),
      max_connections_(max_connections < 1 ? 1 : max_connections),
      busy_timeout_ms_(busy_timeout_ms) {}

ReadPool::~ReadPool() { Close(); }

Result<ReadPool::Lease> ReadPool::Acquire() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return closed_ || !idle_.empty() || open_count_ < max_connections_; });
  if (closed_) return Error::Unavailable("the sqlite store is closed");
  if (!idle_.empty()) {
    std::unique_ptr<Connection> conn = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(conn));
  }
  // Reserve the slot, then open outside the lock: opening touches the file system.
  ++open_count_;
  lock.unlock();
  auto conn = Connection::Open(path_, SQLITE_OPEN_READONLY, busy_timeout_ms_);
  // A bigger page cache than SQLite's 2 MiB, so that the pages of a list (indexes of 100,000
  // keys) stay in memory between reads while nothing is written; and the database file mapped
  // into memory, so that pages not in the WAL are read without a system call (SQLite drops a
  // reader's page cache whenever another connection has committed).
  if (conn.ok()) {
    Status tuned = (*conn)->Exec("PRAGMA cache_size=-16384; PRAGMA mmap_size=1073741824");
    if (!tuned.ok()) conn = tuned.error();
  }
  if (!conn.ok()) {
    lock.lock();
    --open_count_;
    cv_.notify_all();
    return conn.error();
  }
  return Lease(this, std::move(*conn));
}

void ReadPool::Close() {
  std::vector<std::unique_ptr<Connection>> to_close;
  {
    std::unique_lock<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_count_ == static_cast<int>(idle_.size()); });
    to_close.swap(idle_);
    open_count_ = 0;
  }
  // Destroyed here, outside the lock.
}

void ReadPool::Return(std::unique_ptr<Connection> conn) {
  bool closing = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(std::move(conn));
    closing = closed_;
  }
  // One connection came back, so one acquirer can use it: waking every waiter (up to the
  // server's whole blocking pool) would only send the others back to sleep. A Close() waiting
  // for its leases is woken by every return once closed_ is set.
  if (closing) {
    cv_.notify_all();
  } else {
    cv_.notify_one();
  }
}

}  // namespace keygate::store::sqlite
