#include "proxy/openai_response.h"

#include <algorithm>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace keygate::proxy {
namespace {

namespace json = boost::json;

constexpr std::string_view kDataField = "data:";
constexpr std::string_view kNullUsage = ",\"usage\":null";
constexpr std::string_view kCompletionKeys[] = {"\"content\":\"", "\"arguments\":\"",
                                                "\"refusal\":\"", "\"reasoning\":\"",
                                                "\"reasoning_content\":\""};

int64_t NonNegative(const json::value* value) {
  if (value == nullptr || !value->is_int64()) return 0;
  return std::max<int64_t>(value->get_int64(), 0);
}

// Where the event terminator ending at or after `from` is, and its length; npos if none.
size_t FindTerminator(std::string_view text, size_t from, size_t* length) {
  for (size_t i = from; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '\n' && c != '\r') continue;
    if (text.compare(i, 2, "\n\n") == 0 || text.compare(i, 2, "\r\r") == 0) {
      *length = 2;
      return i;
    }
    if (text.compare(i, 4, "\r\n\r\n") == 0) {
      *length = 4;
      return i;
    }
  }
  return std::string_view::npos;
}

// Length of the JSON string body starting at `from` (just after its opening quote), up to the
// closing unescaped quote or the end of `text`.
size_t StringBodyLength(std::string_view text, size_t from) {
  size_t i = from;
  while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
  return std::min(i, text.size()) - from;
}

}  // namespace

std::optional<TokenUsage> ParseUsage(std::string_view text) {
  boost::system::error_code ec;
  json::value document = json::parse(text, ec);
  if (ec || !document.is_object()) return std::nullopt;
  const json::value* usage = document.get_object().if_contains("usage");
  if (usage == nullptr || !usage->is_object()) return std::nullopt;
  const json::object& counts = usage->get_object();
  const json::value* prompt = counts.if_contains("prompt_tokens");
  if (prompt == nullptr || !prompt->is_int64()) return std::nullopt;
  return TokenUsage{NonNegative(prompt), NonNegative(counts.if_contains("completion_tokens"))};
}

void SseSplitter::Feed(std::string_view data, std::vector<std::string_view>* events) {
  events->clear();
  if (consumed_ > 0) {
    buffer_.erase(0, consumed_);
    scanned_ -= std::min(scanned_, consumed_);
    consumed_ = 0;
  }
  buffer_.append(data);
  bytes_fed_ += data.size();
  const std::string_view text(buffer_);
  size_t start = 0;
  // A terminator may straddle two reads: search again from up to three bytes back.
  size_t search = scanned_ >= 3 ? scanned_ - 3 : 0;
  while (true) {
    size_t length = 0;
    const size_t at = FindTerminator(text, std::max(search, start), &length);
    if (at == std::string_view::npos) break;
    events->push_back(text.substr(start, at + length - start));
    start = at + length;
    search = start;
  }
  consumed_ = start;
  scanned_ = text.size();
}

std::string_view SseSplitter::Pending() const {
  return std::string_view(buffer_).substr(consumed_);
}

std::string_view EventData(std::string_view event) {
  size_t line = 0;
  while (line < event.size()) {
    size_t end = event.find_first_of("\r\n", line);
    if (end == std::string_view::npos) end = event.size();
    std::string_view text = event.substr(line, end - line);
    if (text.substr(0, kDataField.size()) == kDataField) {
      text.remove_prefix(kDataField.size());
      if (!text.empty() && text.front() == ' ') text.remove_prefix(1);
      return text;
    }
    line = end + 1;
  }
  return {};
}

EventKind ClassifyEvent(std::string_view event) {
  const std::string_view data = EventData(event);
  if (data == "[DONE]") return EventKind::kDone;
  // Cheap test first: only an event naming a usage object can be a usage-only chunk.
  if (data.find("\"usage\":{") == std::string_view::npos &&
      data.find("\"usage\": {") == std::string_view::npos) {
    return EventKind::kContent;
  }
  const bool no_choices = data.find("\"choices\":[]") != std::string_view::npos ||
                          data.find("\"choices\": []") != std::string_view::npos;
  return no_choices ? EventKind::kUsageOnly : EventKind::kContent;
}

std::optional<std::string> WithoutNullUsage(std::string_view event) {
  const std::string_view data = EventData(event);
  // The payload must end with `,"usage":null}`: a top-level member, never text inside a string
  // (whose quotes would be escaped).
  if (data.size() < kNullUsage.size() + 1 || data.back() != '}') return std::nullopt;
  const size_t at = data.size() - 1 - kNullUsage.size();
  if (data.substr(at, kNullUsage.size()) != kNullUsage) return std::nullopt;
  const size_t offset = static_cast<size_t>(data.data() - event.data()) + at;
  std::string out(event.substr(0, offset));
  out.append(event.substr(offset + kNullUsage.size()));
  return out;
}

int64_t CompletionTextBytes(std::string_view event) {
  int64_t bytes = 0;
  for (std::string_view key : kCompletionKeys) {
    size_t at = event.find(key);
    while (at != std::string_view::npos) {
      const size_t body = at + key.size();
      const size_t length = StringBodyLength(event, body);
      bytes += static_cast<int64_t>(length);
      at = event.find(key, body + length);
    }
  }
  return bytes;
}

}  // namespace keygate::proxy
