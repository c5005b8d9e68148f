#include "common/log.h"

#include <cmath>
#include <ctime>

#include "common/text_writer.h"
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
}  // namespace

void Logger::Log(LogLevel level, std::string_view event, std::span<const LogField> fields) {
  if (!Enabled(level)) return;
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
  std::lock_guard<std::mutex> lock(mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace keygate
