// One `keygate serve` per store. Each server keeps its keys' rolling windows, reservations and
// live spend in memory, so two servers on one SQLite store would each admit a key's full RPM,
// TPM and budget: twice its limits. The lock is an advisory flock(2) on a file beside the
// database (PATH.serve-lock), which the kernel releases when the process ends however it ends
// (kill -9 included), so a crash never leaves a stale lock; the file itself stays. The CLI's
// `init`, `owner create` and `provisioning-key create` do not take it: they may run beside a
// server (they only ask whether one holds it: Holder()).
//
// Thread safety: a ServeLock is owned by one thread; it only holds a descriptor.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"

namespace keygate::server {

class ServeLock {
 public:
  // Takes the lock of the store at `db_path`, writing this process's id into the lock file.
  // Unavailable, naming the holder's process id when it can be read, if another process holds
  // it; Internal if the lock file cannot be opened.
  static Result<ServeLock> Acquire(const std::string& db_path);

  // Whether a `keygate serve` holds the lock of the store at `db_path` now: its process id as
  // the lock file holds it ("" if unreadable), or nullopt when none does (or there is no lock
  // file). A shared lock tried and let go at once (Acquire tries for 100 ms, so that a server
  // starting in that instant is not refused).
  static std::optional<std::string> Holder(const std::string& db_path);

  ServeLock(ServeLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ServeLock& operator=(ServeLock&& other) noexcept;
  ServeLock(const ServeLock&) = delete;
  ServeLock& operator=(const ServeLock&) = delete;
  ~ServeLock();

 private:
  explicit ServeLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace keygate::server
