#include "server/serve_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace keygate::server {

namespace {

// The process id a lock file holds, without its line end ("" if unreadable).
std::string HolderPid(int fd) {
  char holder[32] = {};
  const ssize_t got = ::pread(fd, holder, sizeof holder - 1, 0);
  std::string pid(holder, got > 0 ? static_cast<size_t>(got) : 0);
  while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
  return pid;
}

}  // namespace

std::optional<std::string> ServeLock::Holder(const std::string& db_path) {
  const std::string path = db_path + ".serve-lock";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> holder;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) holder = HolderPid(fd);
  }
  ::close(fd);  // lets go of the shared lock if it was taken
  return holder;
}

Result<ServeLock> ServeLock::Acquire(const std::string& db_path) {
  const std::string path = db_path + ".serve-lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  // A lock file left by another user (a server once run as root) still locks when read-only;
  // only the process id is not written then.
  if (fd < 0 && errno == EACCES) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Error::Internal("cannot open the lock file " + path + ": " + std::strerror(errno));
  }
  // Tried for up to 100 ms: a CLI command asking whether a server holds it (Holder) holds it
  // shared for an instant.
  bool locked = false;
  int error = 0;
  for (int tries = 0; tries < 20; ++tries) {
    locked = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (locked) break;
    error = errno;
    if (error != EWOULDBLOCK) break;
    ::usleep(5'000);
  }
  if (!locked) {
    const std::string pid = HolderPid(fd);
    ::close(fd);
    if (error != EWOULDBLOCK) {
      return Error::Internal("cannot lock " + path + ": " + std::strerror(error) +
                             " (keygate serve needs flock(2) on the store's file system)");
    }
    return Error::Unavailable(
        "another keygate serve" + (pid.empty() ? std::string() : " (pid " + pid + ")") +
        " already serves the store " + db_path +
        ": one server per store (each keeps its keys' windows and spend in memory, so two "
        "would admit twice the limits)");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the id; only the message of a second server loses it.
  }
  return ServeLock(fd);
}

ServeLock& ServeLock::operator=(ServeLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

ServeLock::~ServeLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the flock
}

}  // namespace keygate::server
