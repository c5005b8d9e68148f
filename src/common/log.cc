#include "common/log.h"

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

#include "common/text_writer.h"
#include "common/thread_name.h"
#include "common/utf8.h"

namespace keygate {

namespace {

// AppendJsonString onto a std::string or a TextWriter: runs of plain characters in one append.
template <typename Out>
void AppendJsonStringTo(Out* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t plain = 0;  // start of the run of characters that need no escape
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') continue;
    if (c >= 0x80) {
      // JSON text is UTF-8 (RFC 8259 §8.1): a byte that begins no valid sequence (a path's
      // %ff, decoded) becomes U+FFFD, or the whole answer or log line would be unreadable to a
      // strict parser (audit Q).
      if (const size_t length = Utf8SequenceLength(s.substr(i)); length > 0) {
        i += length - 1;
        continue;
      }
      out->append(s.data() + plain, i - plain);
      plain = i + 1;
      out->append("\\ufffd");
      continue;
    }
    out->append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default: {
        const char escape[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        out->append(escape, sizeof escape);
      }
    }
  }
  out->append(s.data() + plain, s.size() - plain);
  out->push_back('"');
}

}  // namespace

void AppendJsonString(std::string* out, std::string_view s) { AppendJsonStringTo(out, s); }
void AppendJsonString(TextWriter* out, std::string_view s) { AppendJsonStringTo(out, s); }

namespace {
const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

// One log line: `{"ts":...,"level":...,"event":...,fields...}` and a line feed.
std::string FormatLine(LogLevel level, std::string_view event, std::span<const LogField> fields) {
  // The log line's timestamp is for humans reading logs, not for any decision, so it may use
  // the real time of day (clock.h governs decisions).
  std::timespec ts;
  std::timespec_get(&ts, TIME_UTC);
  std::tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[64];  // room for any int the format could be given (no truncation warning)
  std::snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
  std::string line;
  line.reserve(256);
  line += "{\"ts\":\"";
  line += when;
  line += "\",\"level\":\"";
  line += LevelName(level);
  line += "\",\"event\":";
  AppendJsonString(&line, event);
  for (const LogField& f : fields) {
    line += ',';
    AppendJsonString(&line, f.key);
    line += ':';
    if (auto* s = std::get_if<std::string_view>(&f.value)) {
      AppendJsonString(&line, *s);
    } else if (auto* i = std::get_if<int64_t>(&f.value)) {
      line += std::to_string(*i);
    } else if (auto* d = std::get_if<double>(&f.value)) {
      line += std::isfinite(*d) ? std::to_string(*d) : "null";
    } else {
      line += std::get<bool>(f.value) ? "true" : "false";
    }
  }
  line += "}\n";
  return line;
}

// A write a pipe with room takes whole without blocking (a pipe's page; a socket that polls
// writable has more room than this).
constexpr size_t kMostBytesPerWrite = 4096;
// How long a stop waits for a reader that stopped reading, and how often the writer looks.
constexpr auto kStopWait = std::chrono::seconds(1);
constexpr int kPollMs = 100;

enum class Room { kSome, kNone, kGone };

// Whether `fd` takes a write now (kGone: it never will, a reader closed or an error).
Room RoomIn(int fd, int timeout_ms) {
  for (;;) {
    pollfd p{fd, POLLOUT, 0};
    const int ready = ::poll(&p, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return Room::kNone;
    if (ready < 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return Room::kGone;
    return Room::kSome;
  }
}

}  // namespace

// Where the lines go: written at once while the reader keeps up, else through the backlog and
// the thread that writes it (started at the first stall).
class Logger::Writer {
 public:
  explicit Writer(std::FILE* out) : out_(out), fd_(out ? fileno(out) : -1) {
    struct stat st {};
    // A regular file always has room (a slow disk blocks a write, as it would any reader's);
    // so has a FILE* without a descriptor (a memory stream).
    may_stall_ = fd_ >= 0 && ::fstat(fd_, &st) == 0 && !S_ISREG(st.st_mode);
    if (!may_stall_) return;
    is_socket_ = S_ISSOCK(st.st_mode);
    if (!is_socket_) {
      // A pipe or a terminal: written through a description of its own that never blocks (a
      // terminal that polls writable still blocks a write longer than its room: the review).
      // Not O_NONBLOCK on the descriptor itself, whose description a shell may share.
      const std::string path = "/proc/self/fd/" + std::to_string(fd_);
      own_fd_ = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    }
  }

  ~Writer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      stop_by_ = std::chrono::steady_clock::now() + kStopWait;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
    if (own_fd_ >= 0) ::close(own_fd_);
  }

  void Write(std::string line) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!may_stall_) {
      std::fwrite(line.data(), 1, line.size(), out_);
      std::fflush(out_);
      return;
    }
    if (backlog_.empty() && !writing_) {
      const size_t written = WriteWhatFits(line);
      if (written == line.size()) return;
      line.erase(0, written);  // a line begun is finished, whatever the backlog holds
    } else if (gave_up_ || backlog_.size() + in_flight_ + line.size() > kMostBacklogBytes) {
      ++dropped_;
      ++unreported_;
      return;
    }
    backlog_.append(line);
    if (!thread_.joinable() && !StartThread()) {
      // No thread to be had: written as it was before the backlog (blocking).
      WriteAll(backlog_, /*give_up=*/false);
      backlog_.clear();
      return;
    }
    wake_.notify_one();
  }

  int64_t dropped() const {
    std::lock_guard<std::mutex> lock(mu_);
    return dropped_;
  }

 private:
  bool StartThread() {
    try {
      thread_ = std::thread([this] {
        NameThisThread("kg-log");
        Run();
      });
      return true;
    } catch (const std::system_error&) {
      return false;
    }
  }

  // One write that never blocks: through the non-blocking description, or MSG_DONTWAIT on a
  // socket; else (no such description could be had) a plain write after a poll found room.
  ssize_t WriteSome(std::string_view text) {
    const size_t n = std::min(text.size(), kMostBytesPerWrite);
    if (is_socket_) return ::send(fd_, text.data(), n, MSG_DONTWAIT | MSG_NOSIGNAL);
    return ::write(own_fd_ >= 0 ? own_fd_ : fd_, text.data(), n);
  }

  // Lines in `text` (those given up on), for the count of lines dropped.
  static int64_t LinesIn(std::string_view text) {
    return static_cast<int64_t>(std::count(text.begin(), text.end(), '\n'));
  }

  // Writes the start of `text` that the descriptor takes without waiting; returns its length
  // (all of it when the descriptor is gone: such lines are lost, as they would have been).
  size_t WriteWhatFits(std::string_view text) {
    size_t done = 0;
    while (done < text.size()) {
      const Room room = RoomIn(fd_, 0);
      if (room == Room::kNone) return done;
      if (room == Room::kGone) {
        CountLost(text.substr(done));
        return text.size();
      }
      const ssize_t n = WriteSome(text.substr(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return done;
      if (n <= 0) {
        CountLost(text.substr(done));
        return text.size();
      }
      done += static_cast<size_t>(n);
    }
    return done;
  }

  // Writes `text` whole, waiting for room; with `give_up`, not after the stop's deadline.
  // Returns false when it gave up or the descriptor is gone.
  bool WriteAll(std::string_view text, bool give_up) {
    while (!text.empty()) {
      // Every pass: a reader that takes a little at a time holds a stop no longer (the review).
      if (give_up && PastTheStopsDeadline()) return false;
      const Room room = RoomIn(fd_, kPollMs);
      if (room == Room::kGone) return false;
      if (room == Room::kNone) continue;
      const ssize_t n = WriteSome(text);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) return false;
      text.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Lines lost with a descriptor that is gone (called under the lock, from Write).
  void CountLost(std::string_view text) {
    const int64_t lines = LinesIn(text);
    dropped_ += lines;
  }

  bool PastTheStopsDeadline() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_ && std::chrono::steady_clock::now() >= stop_by_;
  }

  // The backlog's thread: takes what waits, writes it as the reader takes it, then says how
  // many lines were dropped meanwhile.
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      wake_.wait(lock, [this] { return stopping_ || !backlog_.empty(); });
      if (backlog_.empty()) return;  // stopping, nothing left
      std::string batch;
      batch.swap(backlog_);
      writing_ = true;
      in_flight_ = batch.size();
      lock.unlock();
      const bool written = WriteAll(batch, /*give_up=*/true);
      lock.lock();
      writing_ = false;
      in_flight_ = 0;
      if (!written) {
        // The stop's deadline passed, or no reader is left: what waits is dropped, counted, and
        // so is every line after (no thread writes them).
        dropped_ += LinesIn(batch) + LinesIn(backlog_);
        backlog_.clear();
        gave_up_ = true;
        return;
      }
      if (backlog_.empty() && unreported_ > 0) {
        const LogField count("lines", unreported_);
        const LogField most("backlog_bytes", static_cast<int64_t>(kMostBacklogBytes));
        const LogField fields[] = {count, most};
        backlog_ = FormatLine(LogLevel::kWarn, "log.dropped", fields);
        unreported_ = 0;
      }
    }
  }

  std::FILE* const out_;
  const int fd_;
  bool may_stall_ = false;
  bool is_socket_ = false;
  int own_fd_ = -1;         // a non-blocking description of a pipe or terminal, or -1
  bool gave_up_ = false;    // the thread stopped for good: later lines are dropped
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::string backlog_;     // whole lines (the first may be the rest of one begun)
  bool writing_ = false;    // the thread writes lines taken from the backlog
  size_t in_flight_ = 0;    // their bytes (held, as the backlog's are)
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stop_by_;
  int64_t dropped_ = 0;     // ever
  int64_t unreported_ = 0;  // since the last log.dropped line
  std::thread thread_;
};

Logger::Logger(std::FILE* out, LogLevel min_level)
    : writer_(std::make_unique<Writer>(out)), min_level_(min_level) {}

Logger::~Logger() = default;

int64_t Logger::dropped() const { return writer_->dropped(); }

void Logger::Log(LogLevel level, std::string_view event, std::span<const LogField> fields) {
  if (!Enabled(level)) return;
  writer_->Write(FormatLine(level, event, fields));
}

}  // namespace keygate
