// Structured logging: one JSON object per line on a FILE* (stderr by default), with a level,
// an event name, and fields. Never pass a secret: callers log keys only through
// keys::MaskSecret() or their public hash prefix.
//
// The Logger is created once in main() and passed by reference (no global logger).
// Thread safety: Log() may be called from any thread; lines never interleave.
//
// A line is written at once, as it is made, while the log's reader keeps up. When the reader of
// a pipe, a socket or a terminal stops reading (a stalled journald or container log driver), a
// line is never waited for: what does not fit goes to a backlog that a thread of the Logger's
// writes as the reader takes it; past kMostBacklogBytes, lines are dropped and counted, and a
// `log.dropped` line with the count follows once the backlog is written.
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>

namespace keygate {

enum class LogLevel {
  kDebug,  // verbose diagnostics, off by default
  kInfo,   // lifecycle and access lines
  kWarn,   // a request or component misbehaved, service continues
  kError,  // keygate's own fault
};

struct LogField {
  std::string_view key;
  std::variant<std::string_view, int64_t, double, bool> value;
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  LogField(std::string_view k, int64_t v) : key(k), value(v) {}
  LogField(std::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, uint64_t v) : key(k), value(static_cast<int64_t>(v)) {}
  LogField(std::string_view k, double v) : key(k), value(v) {}
  LogField(std::string_view k, bool v) : key(k), value(v) {}
};

class Logger {
 public:
  // Lines held for a reader that stopped reading, at most.
  static constexpr size_t kMostBacklogBytes = 4 << 20;

  // Does not take ownership of `out`.
  explicit Logger(std::FILE* out = stderr, LogLevel min_level = LogLevel::kInfo);
  // Writes the backlog, waiting at most a second for a reader that stopped reading.
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  void Log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {}) {
    Log(level, event, std::span<const LogField>(fields.begin(), fields.size()));
  }
  // For a line whose fields vary.
  void Log(LogLevel level, std::string_view event, std::span<const LogField> fields);
  void Info(std::string_view event, std::initializer_list<LogField> fields = {}) {
    Log(LogLevel::kInfo, event, fields);
  }
  void Warn(std::string_view event, std::initializer_list<LogField> fields = {}) {
    Log(LogLevel::kWarn, event, fields);
  }
  void Error(std::string_view event, std::initializer_list<LogField> fields = {}) {
    Log(LogLevel::kError, event, fields);
  }
  bool Enabled(LogLevel level) const { return level >= min_level_; }
  // Lines dropped so far because the backlog was full.
  int64_t dropped() const;

 private:
  class Writer;  // log.cc
  std::unique_ptr<Writer> writer_;
  LogLevel min_level_;
};

class TextWriter;  // common/text_writer.h

// Appends `s` to `out` as a JSON string literal (with quotes), escaping as RFC 8259 requires; a
// byte that begins no valid UTF-8 sequence is written as \ufffd (JSON text is UTF-8).
void AppendJsonString(std::string* out, std::string_view s);
void AppendJsonString(TextWriter* out, std::string_view s);

}  // namespace keygate
