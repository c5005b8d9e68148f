#include "proxy/openai_response.h"

#include <string.h>  // memrchr (GNU)

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iterator>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/value.hpp>

#include "common/find_bytes.h"
#include "common/json_text.h"
#include "proxy/json_scanner.h"
#include "proxy/quote_index.h"

namespace keygate::proxy {
namespace {

namespace json = boost::json;

constexpr std::string_view kDataField = "data:";
constexpr std::string_view kUsageKey = "\"usage\"";
constexpr std::string_view kNullUsage = ",\"usage\":null";
// Members whose string values are completion text (an audio answer's `transcript` too: audit R
// saw a stream of transcripts without usage charged nothing).
constexpr std::string_view kCompletionKeys[] = {"content",   "arguments",         "refusal",
                                                "reasoning", "reasoning_content", "transcript"};

bool IsJsonSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The end of the line starting at `from`: the first CR or LF, or the end of `text`.
size_t LineEnd(std::string_view text, size_t from) {
  const size_t rest = text.size() - from;
  const void* lf = std::memchr(text.data() + from, '\n', rest);
  const size_t lf_at = lf ? static_cast<size_t>(static_cast<const char*>(lf) - text.data())
                          : text.size();
  const void* cr = std::memchr(text.data() + from, '\r', lf_at - from);
  return cr ? static_cast<size_t>(static_cast<const char*>(cr) - text.data()) : lf_at;
}

// If the "usage" at `at` is a key (after '{' or ',') whose value is an object, returns where
// that object starts; else npos (the text was inside a string, or a value).
size_t UsageObjectStart(std::string_view text, size_t at) {
  size_t before = at;
  while (before > 0 && IsJsonSpace(text[before - 1])) --before;
  if (before == 0 || (text[before - 1] != '{' && text[before - 1] != ',')) {
    return std::string_view::npos;
  }
  size_t i = at + kUsageKey.size();
  while (i < text.size() && IsJsonSpace(text[i])) ++i;
  if (i >= text.size() || text[i] != ':') return std::string_view::npos;
  ++i;
  while (i < text.size() && IsJsonSpace(text[i])) ++i;
  return i < text.size() && text[i] == '{' ? i : std::string_view::npos;
}

int64_t NonNegative(const json::value* value) {
  if (value == nullptr || !value->is_int64()) return 0;
  return std::max<int64_t>(value->get_int64(), 0);
}

// Where the event terminator ending at or after `from` is, and its length; npos if none.
size_t FindTerminator(std::string_view text, size_t from, size_t* length) {
  // From line end to line end, found by memchr (an event is mostly one long data line): the
  // next LF, or a CR before it.
  const char* const base = text.data();
  for (size_t i = from; i < text.size();) {
    const auto* lf = static_cast<const char*>(std::memchr(base + i, '\n', text.size() - i));
    const size_t lf_at = lf != nullptr ? static_cast<size_t>(lf - base) : text.size();
    const auto* cr = static_cast<const char*>(std::memchr(base + i, '\r', lf_at - i));
    if (cr == nullptr && lf == nullptr) break;
    const size_t at = cr != nullptr ? static_cast<size_t>(cr - base) : lf_at;
    // Byte by byte, not by compare(): a call to memcmp per line for two bytes.
    const size_t left = text.size() - at;
    const char c = base[at];
    if (left >= 2 && base[at + 1] == c) {  // "\n\n" or "\r\r"
      *length = 2;
      return at;
    }
    if (left >= 4 && c == '\r' && base[at + 1] == '\n' && base[at + 2] == '\r' &&
        base[at + 3] == '\n') {
      *length = 4;
      return at;
    }
    i = at + 1;
  }
  return std::string_view::npos;
}

// Cuts the events that `text` completes from `start` on into *events (appended); returns where
// the unfinished rest begins. `search` is where a terminator may begin at the earliest.
size_t CutEvents(std::string_view text, size_t start, size_t search,
                 std::vector<std::string_view>* events) {
  while (true) {
    size_t length = 0;
    const size_t at = FindTerminator(text, std::max(search, start), &length);
    if (at == std::string_view::npos) return start;
    events->push_back(text.substr(start, at + length - start));
    start = at + length;
    search = start;
  }
}

// Length of the JSON string body starting at `from` (just after its opening quote), up to the
// closing unescaped quote or the end of `text`.
size_t StringBodyLength(std::string_view text, size_t from) {
  size_t i = from;
  while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
  return std::min(i, text.size()) - from;
}

// `text` read whole into `arena` (which must outlive the value); nullopt if it is not JSON.
std::optional<json::value> ParseIn(std::string_view text, json::monotonic_resource& arena) {
  json::error_code ec;
  json::value parsed = json::parse(text, ec, &arena);
  if (ec) return std::nullopt;
  return parsed;
}

// `usage` unless a count is above kMostTokensReported.
std::optional<TokenUsage> Plausible(const TokenUsage& usage) {
  if (usage.prompt_tokens > kMostTokensReported || usage.completion_tokens > kMostTokensReported) {
    return std::nullopt;
  }
  return usage;
}

// An upstream's error, whatever its status: an `error` member, not null, and no `choices` (the
// review: an embedding answer with `"error":null` and its usage was taken for one).
bool IsErrorObject(const json::object* answer) {
  if (answer == nullptr || answer->contains("choices")) return false;
  const json::value* error = answer->if_contains("error");
  return error != nullptr && !error->is_null();
}

// The value of the member `name` of an object's members: the last one of that name, as a JSON
// parser reads it.
const std::string_view* Find(const std::vector<JsonMemberText>& members, std::string_view name) {
  for (auto it = members.rbegin(); it != members.rend(); ++it) {
    if (JsonNameIs(it->raw_name, name)) return &it->value;
  }
  return nullptr;
}

bool IsObject(std::string_view value) { return !value.empty() && value.front() == '{'; }
bool IsArray(std::string_view value) { return !value.empty() && value.front() == '['; }

// A message's tool calls (an array as written) with each call object that has no `index` given
// its position, as a stream's pieces of tool calls are.
std::string WithIndices(std::string_view calls) {
  std::string out = "[";
  int64_t position = 0;
  for (std::string_view call : ArrayElements(calls)) {
    if (out.size() > 1) out.push_back(',');
    if (IsObject(call) && Find(ObjectMembers(call), "index") == nullptr) {
      out.append(call.substr(0, call.size() - 1));
      out.append(call.size() > 2 ? ",\"index\":" : "\"index\":").append(std::to_string(position));
      out.push_back('}');
    } else {
      out.append(call);
    }
    ++position;
  }
  out.push_back(']');
  return out;
}

}  // namespace

namespace internal {

// The usage object at the start of `text`, read by the scanner: its token counts when both are
// plain non-negative integers (or completion_tokens is absent, for kPromptOnly) and every other
// member is valid JSON. Anything else (a negative or fractional count, an exponent, a repeated
// count, a null, text the scanner gives up on, an escaped member name) is nullopt, for the full
// parser to decide.
std::optional<TokenUsage> ScanUsage(std::string_view text, UsageCounts counts) {
  Scanner scan(text);
  if (!scan.Expect('{')) return std::nullopt;
  std::optional<int64_t> prompt;
  std::optional<int64_t> completion;
  scan.SkipSpace();
  if (scan.Peek() == '}') return std::nullopt;  // no prompt_tokens
  for (bool more = true; more;) {
    ScannedString key;
    // An escaped name might decode to a count's: the full parser reads those.
    if (!scan.ScanString(&key) || key.escaped || !scan.Expect(':')) return std::nullopt;
    std::optional<int64_t>* count = key.raw == "prompt_tokens"       ? &prompt
                                    : key.raw == "completion_tokens" ? &completion
                                                                     : nullptr;
    if (count == nullptr) {
      if (!scan.SkipValue(1)) return std::nullopt;
    } else {
      bool integer = false;
      int64_t value = 0;
      scan.SkipSpace();
      if (count->has_value() || scan.Peek() == '-' || !scan.ScanNumber(&integer, &value) ||
          !integer) {
        return std::nullopt;
      }
      *count = value;
    }
    if (!scan.NextOrClose('}', &more)) return std::nullopt;
  }
  if (!prompt.has_value()) return std::nullopt;
  if (!completion.has_value() && counts == UsageCounts::kPromptAndCompletion) {
    return std::nullopt;
  }
  return Plausible(TokenUsage{*prompt, completion.value_or(0)});
}

// The same, by Boost.JSON's parser: prompt_tokens must be a non-negative integer, and so must
// completion_tokens when it is there and not null (absent or null: 0, as in embeddings; for
// kPromptAndCompletion it must be there). Any other count makes it no usage at all: the call
// is charged as if none came, never made free (a chat completion reporting no completion
// tokens would be charged none for the text it returned).
std::optional<TokenUsage> ParseUsageObject(std::string_view text, UsageCounts counts) {
  // A usage object is small: it is parsed into a buffer on the stack, by a parser the thread
  // keeps, so that settling a call allocates nothing here.
  unsigned char arena[1024];
  json::monotonic_resource resource(arena, sizeof arena);
  thread_local json::parser parser;
  parser.reset(&resource);
  boost::system::error_code ec;
  parser.write_some(text.data(), text.size(), ec);
  if (ec) {
    parser.reset();
    return std::nullopt;
  }
  const json::value usage = parser.release();
  if (!usage.is_object()) return std::nullopt;  // a number or a string (audit CC: read as one)
  const json::value* prompt = usage.get_object().if_contains("prompt_tokens");
  if (prompt == nullptr || !prompt->is_int64() || prompt->get_int64() < 0) return std::nullopt;
  const json::value* completion = usage.get_object().if_contains("completion_tokens");
  const bool reported = completion != nullptr && !completion->is_null();
  if (reported && (!completion->is_int64() || completion->get_int64() < 0)) return std::nullopt;
  if (!reported && counts == UsageCounts::kPromptAndCompletion) return std::nullopt;
  return Plausible(TokenUsage{prompt->get_int64(), NonNegative(completion)});
}

}  // namespace internal

std::optional<TokenUsage> ParseUsage(std::string_view text, UsageCounts counts) {
  // The usage object comes last in OpenAI's answers: find it from the end and parse only it,
  // not the whole answer (an embeddings answer is mostly numbers).
  for (size_t at = text.rfind(kUsageKey); at != std::string_view::npos;
       at = at == 0 ? std::string_view::npos : text.rfind(kUsageKey, at - 1)) {
    const size_t object = UsageObjectStart(text, at);
    if (object == std::string_view::npos) continue;
    const std::string_view rest = text.substr(object);
    if (auto usage = internal::ScanUsage(rest, counts)) return usage;
    return internal::ParseUsageObject(rest, counts);
  }
  return std::nullopt;
}

std::optional<std::string> AnswerAsEvents(std::string_view body, bool with_usage) {
  // Checked by the JSON parser (valid, and of the shape a completion has), then written out
  // from its own text: a document written again would change its numbers (1e400 became
  // `Infinity`, which no client parses; big integers lost digits: audit CC) and its escapes.
  {
    json::monotonic_resource arena;
    std::optional<json::value> parsed = ParseIn(body, arena);
    const json::object* answer = parsed ? parsed->if_object() : nullptr;
    if (answer == nullptr) return std::nullopt;
    // An error in a 200 (some aggregators send them): the event a stream's error is, which
    // the SDKs raise (the openai client's Stream throws an APIError on it).
    if (IsErrorObject(answer)) return "data: " + CompactJson(body) + "\n\n";
    const json::value* object = answer->if_contains("object");
    const json::value* choices = answer->if_contains("choices");
    if (object == nullptr || *object != "chat.completion" || choices == nullptr ||
        !choices->is_array()) {
      return std::nullopt;
    }
    for (const json::value& choice : choices->get_array()) {
      if (!choice.is_object()) return std::nullopt;
    }
  }
  const std::string text = CompactJson(body);  // one data line; no space within any piece
  const std::vector<JsonMemberText> answer = ObjectMembers(text);
  // The members every chunk repeats, as `"name":value,` pieces.
  std::string head = "{";
  for (const char* name : {"id", "created", "model", "system_fingerprint", "service_tier"}) {
    if (const std::string_view* value = Find(answer, name)) {
      head.append("\"").append(name).append("\":").append(*value).append(",");
    }
  }
  head.append("\"object\":\"chat.completion.chunk\",\"choices\":");
  std::string events;
  events.reserve(body.size() + 256);
  int64_t position = 0;
  // One chunk per choice, as OpenAI streams them.
  for (std::string_view choice : ArrayElements(*Find(answer, "choices"))) {
    const std::vector<JsonMemberText> members = ObjectMembers(choice);
    std::string role = "{}";  // the opening chunk's delta, as OpenAI's streams begin
    std::string delta = "{}";
    const std::string_view* message = Find(members, "message");
    if (message != nullptr && IsObject(*message)) {
      delta = "{";
      for (const JsonMemberText& member : ObjectMembers(*message)) {
        if (JsonNameIs(member.raw_name, "role")) {
          role.assign("{\"role\":").append(member.value).append("}");
          continue;
        }
        delta.append("\"").append(member.raw_name).append("\":");
        // A stream's tool calls say which call each piece belongs to.
        if (JsonNameIs(member.raw_name, "tool_calls") && IsArray(member.value)) {
          delta.append(WithIndices(member.value));
        } else {
          delta.append(member.value);
        }
        delta.push_back(',');
      }
      if (delta.size() > 1) delta.pop_back();
      delta.push_back('}');
    }
    const std::string_view* index = Find(members, "index");
    const std::string index_text = index ? std::string(*index) : std::to_string(position);
    const std::string_view* logprobs = Find(members, "logprobs");
    const std::string_view* finish = Find(members, "finish_reason");
    // Its role alone first (an empty delta without one), without logprobs: the openai client's
    // stream helper keeps the logprobs of a choice's first chunk and then adds them again
    // (audit P: doubled).
    events.append("data: ").append(head).append("[{\"index\":").append(index_text);
    events.append(",\"delta\":").append(role);
    events.append(",\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    events.append("data: ").append(head).append("[{\"index\":").append(index_text);
    events.append(",\"delta\":").append(delta);
    events.append(",\"logprobs\":").append(logprobs ? *logprobs : "null");
    events.append(",\"finish_reason\":").append(finish ? *finish : "null");
    events.append("}]}\n\n");
    ++position;
  }
  if (const std::string_view* usage = Find(answer, "usage"); with_usage && usage) {
    events.append("data: ").append(head).append("[],\"usage\":");
    events.append(*usage).append("}\n\n");
  }
  events.append("data: [DONE]\n\n");
  return events;
}

std::string TextEscapesDecoded(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out.push_back(text[i]);
      continue;
    }
    const char kind = text[i + 1];
    if (kind == '/') {
      out.push_back('/');
      ++i;
      continue;
    }
    unsigned code = 0;
    if (kind == 'u' && i + 6 <= text.size() &&
        std::from_chars(text.data() + i + 2, text.data() + i + 6, code, 16).ptr ==
            text.data() + i + 6 &&
        code >= 0x20 && code < 0x7F && code != '"' && code != '\\') {
      out.push_back(static_cast<char>(code));
      i += 5;
      continue;
    }
    out.append(text.substr(i, 2));  // another escape, an escaped backslash: as it is
    ++i;
  }
  return out;
}

bool HasHidingEscape(std::string_view text) {
  return text.find("\\u") != std::string_view::npos ||
         text.find("\\/") != std::string_view::npos;
}

std::optional<int> ErrorAnswerStatus(std::string_view body) {
  constexpr int kUnusableUpstreamAnswer = 502;
  // Asked of every plain answer (FindBytes: not a pass that stops at each quote).
  if (FindBytes(body, "\"error\"") == std::string_view::npos) return std::nullopt;
  json::monotonic_resource arena;
  const std::optional<json::value> parsed = ParseIn(body, arena);
  const json::object* answer = parsed ? parsed->if_object() : nullptr;
  if (!IsErrorObject(answer)) return std::nullopt;
  const json::object* error = answer->at("error").if_object();
  const json::value* code = error ? error->if_contains("code") : nullptr;
  if (code != nullptr && code->is_number()) {
    json::error_code ec;
    const auto status = code->to_number<int64_t>(ec);
    if (!ec && status >= 400 && status <= 599) return static_cast<int>(status);
  }
  return kUnusableUpstreamAnswer;
}

void SseSplitter::Feed(std::string_view data, std::vector<std::string_view>* events) {
  events->clear();
  if (consumed_ > 0) {
    buffer_.erase(0, consumed_);
    scanned_ -= std::min(scanned_, consumed_);
    consumed_ = 0;
  }
  bytes_fed_ += data.size();
  if (buffer_.empty()) {
    // The usual case, a read that starts an event: the events are cut from `data` itself and
    // only an unfinished rest is kept (all of it searched already).
    const size_t rest = CutEvents(data, 0, 0, events);
    buffer_.assign(data.substr(rest));
    scanned_ = buffer_.size();
    return;
  }
  buffer_.append(data);
  const std::string_view text(buffer_);
  // A terminator may straddle two reads: search again from up to three bytes back.
  consumed_ = CutEvents(text, 0, scanned_ >= 3 ? scanned_ - 3 : 0, events);
  scanned_ = text.size();
}

std::string_view SseSplitter::Pending() const {
  return std::string_view(buffer_).substr(consumed_);
}

namespace {

// Calls `f` with the text of each data line of `event` (after "data:" and one optional space,
// without the line terminator), in order, until `f` returns false.
template <class F>
void ForEachDataLine(std::string_view event, F&& f) {
  size_t line = 0;
  while (line < event.size()) {
    const size_t end = LineEnd(event, line);
    std::string_view text = event.substr(line, end - line);
    if (text.substr(0, kDataField.size()) == kDataField) {
      text.remove_prefix(kDataField.size());
      if (!text.empty() && text.front() == ' ') text.remove_prefix(1);
      if (!f(text)) return;
    }
    line = end + 1;
  }
}

}  // namespace

std::string_view EventData(std::string_view event) {
  std::string_view first;
  ForEachDataLine(event, [&first](std::string_view text) {
    first = text;
    return false;
  });
  return first;
}

std::string JoinedEventData(std::string_view event) {
  std::string joined;
  bool first = true;
  ForEachDataLine(event, [&](std::string_view text) {
    if (!first) joined.push_back('\n');
    joined.append(text);
    first = false;
    return true;
  });
  return joined;
}

EventKind ClassifyEvent(std::string_view event) { return ClassifyData(EventData(event)); }

EventKind ClassifyData(std::string_view data) {
  if (data == "[DONE]") return EventKind::kDone;
  // Cheap test first: only an event naming a usage object can be a usage-only chunk.
  if (FindBytes(data, "\"usage\":{") == std::string_view::npos &&
      FindBytes(data, "\"usage\": {") == std::string_view::npos) {
    return EventKind::kContent;
  }
  const bool no_choices = FindBytes(data, "\"choices\":[]") != std::string_view::npos ||
                          FindBytes(data, "\"choices\": []") != std::string_view::npos;
  return no_choices ? EventKind::kUsageOnly : EventKind::kContentWithUsage;
}

namespace {

// Where the event's `,"usage":null` begins, or npos; `data` is EventData(event).
size_t NullUsageOffset(std::string_view event, std::string_view data) {
  // The payload must end with `,"usage":null}`: a top-level member, never text inside a string
  // (whose quotes would be escaped).
  if (data.size() < kNullUsage.size() + 1 || data.back() != '}') return std::string_view::npos;
  const size_t at = data.size() - 1 - kNullUsage.size();
  if (data.substr(at, kNullUsage.size()) != kNullUsage) return std::string_view::npos;
  return static_cast<size_t>(data.data() - event.data()) + at;
}

}  // namespace

std::optional<std::string> WithoutNullUsage(std::string_view event) {
  const size_t offset = NullUsageOffset(event, EventData(event));
  if (offset == std::string_view::npos) return std::nullopt;
  std::string out;
  AppendWithoutNullUsage(event, offset, &out);
  return out;
}

void AppendWithoutNullUsage(std::string_view event, size_t offset, std::string* out) {
  out->append(event.substr(0, offset)).append(event.substr(offset + kNullUsage.size()));
}

int64_t CompletionTextBytes(std::string_view event) {
  // One pass over every `"name":"` (a member whose value is a string: inside a string, a quote
  // is escaped, so the pattern cannot occur there), keeping the completion members.
  constexpr std::string_view kStringMember = "\":\"";
  int64_t bytes = 0;
  size_t at = FindBytes(event, kStringMember);
  while (at != std::string_view::npos) {
    const size_t body = at + kStringMember.size();
    const void* open = at == 0 ? nullptr : memrchr(event.data(), '"', at);
    const size_t name_start =
        open ? static_cast<size_t>(static_cast<const char*>(open) - event.data()) + 1 : 0;
    const std::string_view name = event.substr(name_start, at - name_start);
    if (open != nullptr &&
        std::find(std::begin(kCompletionKeys), std::end(kCompletionKeys), name) !=
            std::end(kCompletionKeys)) {
      const size_t length = StringBodyLength(event, body);
      bytes += static_cast<int64_t>(length);
      at = FindBytes(event, kStringMember, body + length);
    } else {
      at = FindBytes(event, kStringMember, body);
    }
  }
  return bytes;
}

namespace {

constexpr bool IsCompletionKeyLength(size_t size) {
  return size == 7 || size == 9 || size == 10 || size == 17;
}
static_assert(std::all_of(std::begin(kCompletionKeys), std::end(kCompletionKeys),
                          [](std::string_view key) { return IsCompletionKeyLength(key.size()); }));

bool IsCompletionKey(std::string_view name) {
  // By length first: most member names have none of the lengths.
  if (!IsCompletionKeyLength(name.size())) return false;
  return std::find(std::begin(kCompletionKeys), std::end(kCompletionKeys), name) !=
         std::end(kCompletionKeys);
}

const char* SkipJsonSpace(const char* p, const char* end) {
  while (p < end && internal::IsJsonSpace(*p)) ++p;
  return p;
}

// The offset after the container whose opening bracket is at `open` in `text` (indexed by
// `quotes`), strings skipped; npos if it is cut short.
size_t ContainerEnd(std::string_view text, size_t open, internal::QuoteIndex& quotes) {
  int depth = 0;
  for (size_t at = open; at < text.size(); ++at) {
    switch (text[at]) {
      case '"':
        at = quotes.StringEnd(at);
        if (at == internal::QuoteIndex::npos) return at;
        break;
      case '{':
      case '[':
        ++depth;
        break;
      case '}':
      case ']':
        if (--depth == 0) return at + 1;
        break;
      default:
        break;
    }
  }
  return std::string_view::npos;
}

// What LexEvent saw besides the facts, for EventShapes.
struct LexMarks {
  // The offset of the opening quote of the first name that can tell anything (see
  // EventShapes), or npos if none does.
  size_t quiet_end = std::string_view::npos;
  int completion_strings = 0;  // completion string values counted
  // The quotes around the last of them.
  size_t string_open = std::string_view::npos;
  size_t string_close = std::string_view::npos;
  bool usage_object = false;
};

// One pass over an event's payload (ScanEvent): a lexer, not a parser. It finds the strings
// (so that nothing inside one is taken for structure), tells member names (a string followed
// by a colon) from values, and looks at the value that follows a name: a string of a
// completion member, a `usage` object, an empty `choices` array. It checks no grammar: the
// usage object itself is read by the scanner or the full parser, and an event cut short gives
// up.
//
// It starts at `start`: 0, or where a name's opening quote is (the lexer's state there is the
// one it starts with).
bool LexEvent(std::string_view payload, size_t start, EventFacts* facts, LexMarks* marks) {
  const char* p = payload.data() + start;
  const char* const end = payload.data() + payload.size();
  std::string_view name;  // the member whose value comes next, if `in_value`
  bool in_value = false;
  bool no_choices = false;
  internal::QuoteIndex quotes(payload);
  auto offset = [&](const char* at) { return static_cast<size_t>(at - payload.data()); };
  while (p < end) {
    const char c = *p;
    if (c == '"') {
      const size_t open_at = offset(p);
      const size_t close_at = quotes.StringEnd(open_at);
      if (close_at == internal::QuoteIndex::npos) return false;
      const char* close = payload.data() + close_at;
      const std::string_view text(p + 1, static_cast<size_t>(close - p - 1));
      p = SkipJsonSpace(close + 1, end);
      if (p < end && *p == ':') {
        name = text;
        in_value = true;
        if (marks->quiet_end == std::string_view::npos &&
            (text == "choices" || text == "usage" || IsCompletionKey(text))) {
          marks->quiet_end = open_at;
        }
        p = SkipJsonSpace(p + 1, end);  // to the value's first byte, where in_value holds
        continue;
      }
      if (in_value && IsCompletionKey(name)) {
        facts->completion_text_bytes += static_cast<int64_t>(text.size());
        ++marks->completion_strings;
        marks->string_open = open_at;
        marks->string_close = close_at;
      }
      in_value = false;
      continue;
    }
    if (c == '{' && in_value && name == "usage") {
      const size_t close_at = ContainerEnd(payload, offset(p), quotes);
      if (close_at == std::string_view::npos) return false;
      const char* close = payload.data() + close_at;
      const std::string_view object(p, static_cast<size_t>(close - p));
      marks->usage_object = true;  // the last usage object decides, as ParseUsage's search does
      // Stream events are a chat completion's: their usage reports completion tokens too.
      facts->usage = internal::ScanUsage(object, UsageCounts::kPromptAndCompletion);
      if (!facts->usage) {
        facts->usage = internal::ParseUsageObject(object, UsageCounts::kPromptAndCompletion);
      }
      p = close;
      in_value = false;
      continue;
    }
    if (c == '[' && in_value && name == "choices") {
      const char* next = SkipJsonSpace(p + 1, end);
      if (next < end && *next == ']') no_choices = true;
    }
    // Anything else ends a value (a number, a literal, a container's bracket, punctuation), and
    // nothing but a string matters until the next name's colon: on to the next quote.
    in_value = false;
    p = payload.data() + quotes.NextQuote(offset(p) + 1);
  }
  if (marks->usage_object) {
    facts->kind = no_choices ? EventKind::kUsageOnly : EventKind::kContentWithUsage;
  }
  return true;
}

}  // namespace

// Learns and matches an EventShapes (its friend).
struct EventShapesAccess {
  // From the first event lexed whole that has a name that can tell something, at
  // `marks.quiet_end`: its payload up to that name, when that fits, else nothing, for good
  // (later events are read whole then, as without a prefix). Only where the name follows a `{`
  // or a `,`, as in valid JSON: after a string instead, whether that string was a name would
  // depend on the byte after the prefix, which the comparison does not cover.
  static void LearnPrefix(std::string_view payload, const LexMarks& marks, EventShapes* shapes) {
    const size_t quiet_end = marks.quiet_end;
    if (quiet_end == std::string_view::npos) return;  // nothing to learn from this one
    size_t before = quiet_end;
    while (before > 0 && internal::IsJsonSpace(payload[before - 1])) --before;
    if (before == 0 || (payload[before - 1] != '{' && payload[before - 1] != ',')) return;
    shapes->prefix_learned_ = true;
    if (quiet_end > EventShapes::kPrefixCapacity) return;
    std::memcpy(shapes->prefix_.data(), payload.data(), quiet_end);
    shapes->prefix_size_ = quiet_end;
  }

  // From an event lexed (whole, or after the prefix) that holds one completion string and no
  // usage object: the bytes around that string. Replaces the chunk learned before, which this
  // event did not match.
  static void LearnChunk(std::string_view payload, const LexMarks& marks, EventShapes* shapes) {
    if (marks.completion_strings != 1 || marks.usage_object) return;
    const size_t head = marks.string_open + 1;
    const size_t tail = payload.size() - marks.string_close;
    if (head > EventShapes::kChunkHeadCapacity || tail > EventShapes::kChunkTailCapacity) return;
    std::memcpy(shapes->head_.data(), payload.data(), head);
    std::memcpy(shapes->tail_.data(), payload.data() + marks.string_close, tail);
    shapes->head_size_ = head;
    shapes->tail_size_ = tail;
  }

  // The facts of a payload that is the learned chunk around another string; nullopt if it is
  // not. The lexer would see the same bytes up to the string's opening quote, then find the
  // same closing quote (through the same index), then the same bytes to the end: the same
  // facts, but for the string's length.
  static std::optional<EventFacts> MatchChunk(std::string_view payload,
                                              const EventShapes& shapes) {
    const std::string_view head = shapes.chunk_head();
    const std::string_view tail = shapes.chunk_tail();
    if (head.empty() || payload.size() < head.size() + tail.size() ||
        payload.substr(0, head.size()) != head) {
      return std::nullopt;
    }
    internal::QuoteIndex quotes(payload);
    const size_t close_at = quotes.StringEnd(head.size() - 1);
    if (close_at == internal::QuoteIndex::npos || payload.substr(close_at) != tail) {
      return std::nullopt;
    }
    EventFacts facts;
    facts.completion_text_bytes = static_cast<int64_t>(close_at - head.size());
    return facts;
  }
};

namespace internal {

std::optional<EventFacts> ScanEvent(std::string_view event, EventShapes* shapes) {
  const std::string_view data = EventData(event);
  // Only the common shape, one data line ending the event: anything after it (a second data
  // line carrying the rest of the payload, an id) is the search's.
  if (data.data() != nullptr) {  // a data line, maybe empty
    const size_t data_end = static_cast<size_t>(data.data() - event.data()) + data.size();
    if (event.find_first_not_of("\r\n", data_end) != std::string_view::npos) return std::nullopt;
  }
  EventFacts facts;
  if (data == "[DONE]") {
    facts.kind = EventKind::kDone;
    return facts;
  }
  if (shapes != nullptr) {
    if (auto chunk = EventShapesAccess::MatchChunk(data, *shapes)) {
      chunk->null_usage_at = NullUsageOffset(event, data);
      return chunk;
    }
  }
  const std::string_view known = shapes != nullptr ? shapes->prefix() : std::string_view();
  // Compared, not read: only bytes that told nothing before are skipped.
  const size_t start = !known.empty() && data.substr(0, known.size()) == known ? known.size() : 0;
  LexMarks marks;
  if (!LexEvent(data, start, &facts, &marks)) return std::nullopt;
  if (shapes != nullptr) {
    if (!shapes->prefix_learned()) EventShapesAccess::LearnPrefix(data, marks, shapes);
    EventShapesAccess::LearnChunk(data, marks, shapes);
  }
  facts.null_usage_at = NullUsageOffset(event, data);
  return facts;
}

bool MatchesChunk(std::string_view event, const EventShapes& shapes) {
  return EventShapesAccess::MatchChunk(EventData(event), shapes).has_value();
}

EventFacts SearchEvent(std::string_view event) {
  // A payload on several data lines (SSE joins them with line feeds; JSON takes those as
  // space) is read whole.
  size_t data_lines = 0;
  ForEachDataLine(event, [&data_lines](std::string_view) { return ++data_lines < 2; });
  const bool one_line = data_lines < 2;
  std::string joined;
  std::string_view data;
  if (one_line) {
    data = EventData(event);
  } else {
    joined = JoinedEventData(event);
    data = joined;
  }
  EventFacts facts;
  facts.kind = ClassifyData(data);
  if (facts.kind == EventKind::kDone) return facts;
  if (facts.kind != EventKind::kContent) {
    facts.usage = ParseUsage(data, UsageCounts::kPromptAndCompletion);
  }
  facts.completion_text_bytes = CompletionTextBytes(event);
  if (one_line) facts.null_usage_at = NullUsageOffset(event, data);
  return facts;
}

}  // namespace internal

EventFacts ReadEvent(std::string_view event) { return ReadEvent(event, nullptr); }

EventFacts ReadEvent(std::string_view event, EventShapes* shapes) {
  if (auto facts = internal::ScanEvent(event, shapes)) return *facts;
  return internal::SearchEvent(event);
}

}  // namespace keygate::proxy
