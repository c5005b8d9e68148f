// A small pool of read-only connections to one SQLite file. In WAL mode readers run beside
// the writer and each sees the last committed state when its transaction starts. Connections
// are opened on demand up to `max_connections`; callers beyond that wait for a free one.
// Each connection keeps its own cache of prepared statements.
//
// Thread safety: Acquire() and Close() may be called from any thread. A Lease, and the
// connection it lends, belong to one thread until the Lease is destroyed.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/sqlite/sqlite_connection.h"

namespace keygate::store::sqlite {

class ReadPool {
 public:
  // A borrowed connection, returned to the pool on destruction.
  class Lease {
   public:
    Lease(ReadPool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Connection& conn() { return *conn_; }

   private:
    ReadPool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  // Does not open anything yet. REQUIRES: max_connections >= 1; the file exists in WAL mode
  // and a write connection stays open while the pool is used (it keeps the -shm file).
  ReadPool(std::string path, int max_connections, int busy_timeout_ms);
  // Close().
  ~ReadPool();
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;

  // A free connection, opening one if fewer than max_connections exist, else waiting for
  // one. Returns Unavailable if the pool is closed or a new connection cannot be opened.
  Result<Lease> Acquire();

  // Refuses new leases, waits for outstanding ones to come back, closes every connection.
  // Idempotent.
  void Close();

 private:
  void Return(std::unique_ptr<Connection> conn);

  const std::string path_;
  const int max_connections_;
  const int busy_timeout_ms_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_
  int open_count_ = 0;                             // guarded by mu_; idle + leased
  bool closed_ = false;                            // guarded by mu_
};

}  // namespace keygate::store::sqlite
