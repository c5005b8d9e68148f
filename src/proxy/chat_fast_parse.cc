// The fast path of ParseChatRequest (see chat_fast_parse.h): one pass of a scanner over the
// raw text that checks the JSON, reads the members the request needs and copies every other
// member into body_without_model as written. It knows only the common shape and gives up
// (nullopt) on anything else, and on anything it cannot be sure of: the document-building
// parser, which knows every rule and every error message, decides those bodies. The scanner
// (proxy/json_scanner.h) may be stricter than JSON but never looser: a body it accepts is
// valid JSON to Boost.JSON's parser.
#include "proxy/chat_fast_parse.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "common/json_text.h"
#include "proxy/json_scanner.h"
#include "proxy/openai_params.h"

namespace keygate::proxy::internal {
namespace {

// Fields outside `messages` that the model reads as part of its prompt (as in
// openai_request.cc); here accepted only as strings or null.
constexpr std::array<std::string_view, 5> kPromptFields = {"tools", "functions", "tool_choice",
                                                           "function_call", "response_format"};

// The top-level members the request reads. Each may appear once.
enum class Member {
  kModel,                // the model's name: a string
  kMessages,             // the conversation: an array of flat messages
  kMaxTokens,            // an integer limit, or null
  kMaxCompletionTokens,  // an integer limit, or null
  kChoices,              // `n`: an integer, or null
  kStream,               // a boolean, or null
  kPrompt,               // one of kPromptFields: a string, or null
  kStreamOptions,        // the slow path's
  kOther,                // not read: checked and forwarded as written
};

// The member `key` names and the bit that marks it seen (0 for members not tracked).
std::pair<Member, unsigned> MemberOf(std::string_view key) {
  static constexpr std::array<std::pair<std::string_view, Member>, 6> kRead = {{
      {"model", Member::kModel},
      {"messages", Member::kMessages},
      {"max_tokens", Member::kMaxTokens},
      {"max_completion_tokens", Member::kMaxCompletionTokens},
      {"n", Member::kChoices},
      {"stream", Member::kStream},
  }};
  for (size_t i = 0; i < kRead.size(); ++i) {
    if (key == kRead[i].first) return {kRead[i].second, 1u << i};
  }
  for (size_t i = 0; i < kPromptFields.size(); ++i) {
    if (key == kPromptFields[i]) return {Member::kPrompt, 1u << (kRead.size() + i)};
  }
  if (key == "stream_options") return {Member::kStreamOptions, 0};
  return {Member::kOther, 0};
}

// Names seen among an object's members, to notice one named twice: a few, kept without
// initializing the room (the scan runs on every call; most objects have a handful of members).
template <size_t N>
class SeenNames {
 public:
  // False if `name` was seen already, or there is no room left (either way: give up).
  bool Add(std::string_view name) {
    if (count_ == N) return false;
    for (size_t i = 0; i < count_; ++i) {
      if (lengths_[i] == name.size() && std::string_view(data_[i], lengths_[i]) == name) {
        return false;
      }
    }
    data_[count_] = name.data();
    lengths_[count_++] = name.size();
    return true;
  }

 private:
  const char* data_[N];
  size_t lengths_[N];
  size_t count_ = 0;
};

// What the scan reads from a body of the common shape.
struct Reading {
  std::string model;
  size_t message_count = 0;
  InputSize conversation;
  std::optional<int64_t> max_tokens;
  std::optional<int64_t> max_completion_tokens;
  std::optional<int64_t> choices;
  bool stream = false;
  std::string body_without_model;  // "{" and the members so far
};

// One message of `messages`, its opening brace at the cursor: an object of strings and nulls
// with exactly one string `role` of OpenAI's, no `audio`, no string `tool_calls` and no member
// twice. Its strings count toward the prompt.
bool ScanMessage(Scanner& scan, InputSize* conversation) {
  if (!scan.Expect('{')) return false;
  bool has_role = false;
  // A member named twice counts once in the full parser (the last): its to read.
  SeenNames<8> names;
  for (bool more = true; more;) {
    ScannedString key;
    if (!scan.ScanString(&key) || key.escaped || key.raw == "audio" || !scan.Expect(':')) {
      return false;
    }
    if (!names.Add(key.raw)) return false;
    const bool role = key.raw == "role";
    scan.SkipSpace();
    // tool_calls as a string: refused, in the full parser's words.
    if (scan.Peek() == '"' && key.raw == "tool_calls") return false;
    if (scan.Peek() == '"') {
      ScannedString value;
      if (!scan.ScanString(&value) || (role && has_role)) return false;
      if (role && (value.escaped || !IsKnownRole(value.raw))) return false;
      has_role = has_role || role;
      conversation->text_bytes += value.decoded_bytes;
    } else if (role || !scan.ScanLiteral("null")) {
      return false;  // a part list, tool calls, a number: the full parser's
    }
    if (!scan.NextOrClose('}', &more)) return false;
  }
  if (!has_role) return false;
  conversation->overhead_tokens += kPerMessageTokens;
  return true;
}

bool ScanMessages(Scanner& scan, Reading* reading) {
  if (!scan.Expect('[')) return false;
  for (bool more = true; more;) {
    if (!ScanMessage(scan, &reading->conversation)) return false;
    ++reading->message_count;
    if (!scan.NextOrClose(']', &more)) return false;
  }
  return true;
}

// An integer in [1, max], or null (absent).
bool ScanBounded(Scanner& scan, int64_t max, std::optional<int64_t>* out) {
  scan.SkipSpace();
  if (scan.Peek() == 'n') return scan.ScanLiteral("null");
  bool integer = false;
  int64_t value = 0;
  if (!scan.ScanNumber(&integer, &value) || !integer || value < 1 || value > max) return false;
  *out = value;
  return true;
}

const ParamRule* Rule(std::string_view key) {
  return FindParamRule(Endpoint::kChatCompletions, key);
}

// A member the request does not read, at the cursor: one of the kinds its rule allows
// (openai_params.h). A number whose sign or integral value the rule cares about, and any value
// of a kind the rule refuses, is the full parser's to judge and word; so is a member without a
// rule (a provider's extension, whose text counts toward the prompt) and web search options
// (which make the prompt's size the context's).
bool ScanOther(Scanner& scan, std::string_view key, const ParamRule* rule) {
  if (rule == nullptr) return false;
  if (key == "web_search_options" && scan.Peek() != 'n') return false;
  unsigned kind = kJsonNumber;
  switch (scan.Peek()) {
    case '"': kind = kJsonString; break;
    case '{': kind = kJsonObject; break;
    case '[': kind = kJsonArray; break;
    case 't': case 'f': kind = kJsonBool; break;
    case 'n': kind = kJsonNull; break;
    default: break;
  }
  // Containers whose items the rule checks: the full parser's.
  if ((kind == kJsonArray || kind == kJsonObject) && rule->item_kinds != 0) return false;
  if (kind != kJsonNumber) return (rule->kinds & kind) != 0 && scan.SkipValue(1);
  if (scan.Peek() == '-' && rule->min != INT64_MIN) return false;
  bool integer = false;
  int64_t value = 0;
  if (!scan.ScanNumber(&integer, &value)) return false;
  if ((rule->kinds & kJsonNumber) != 0) return true;
  return (rule->kinds & kJsonInteger) != 0 && integer && value >= rule->min;
}

// The value of the top-level member `member` named `key`, at the cursor.
bool ScanMemberValue(Scanner& scan, std::string_view key, Member member, Reading* reading) {
  scan.SkipSpace();
  switch (member) {
    case Member::kModel: {
      ScannedString model;
      if (!scan.ScanString(&model) || model.raw.empty()) return false;
      reading->model = model.escaped ? JsonUnescape(model.raw) : std::string(model.raw);
      return true;
    }
    case Member::kMessages:
      return ScanMessages(scan, reading);
    case Member::kMaxTokens:
      return ScanBounded(scan, kMaxCompletionTokensField, &reading->max_tokens);
    case Member::kMaxCompletionTokens:
      return ScanBounded(scan, kMaxCompletionTokensField, &reading->max_completion_tokens);
    case Member::kChoices:
      return ScanBounded(scan, kMaxChoices, &reading->choices);
    case Member::kStream:
      if (scan.Peek() == 't') {
        reading->stream = true;
        return scan.ScanLiteral("true");
      }
      return scan.ScanLiteral(scan.Peek() == 'f' ? "false" : "null");
    case Member::kPrompt:
      if (scan.Peek() == 'n') return scan.ScanLiteral("null");
      {
        ScannedString text;
        if ((Rule(key) == nullptr || (Rule(key)->kinds & kJsonString) == 0) ||
            !scan.ScanString(&text)) {
          return false;
        }
        reading->conversation.text_bytes += text.decoded_bytes;
        return true;
      }
    case Member::kStreamOptions:
      return false;
    case Member::kOther:
      return ScanOther(scan, key, Rule(key));
  }
  return false;
}

// The whole body: an object whose members are read or copied, then only whitespace.
bool ScanBody(std::string_view body, Reading* reading) {
  Scanner scan(body);
  if (!scan.Expect('{')) return false;
  std::string& out = reading->body_without_model;
  out.reserve(body.size() + 40);
  out += '{';
  unsigned seen = 0;
  SeenNames<32> others;  // the names of the members not read
  bool first = true;
  for (bool more = true; more;) {
    scan.SkipSpace();
    const char* member_start = scan.pos();
    ScannedString key;
    // An escaped member name is the full parser's to read.
    if (!scan.ScanString(&key) || key.escaped || !scan.Expect(':')) return false;
    const auto [member, bit] = MemberOf(key.raw);
    if ((seen & bit) != 0) return false;  // a member read twice
    seen |= bit;
    if (member == Member::kOther) {
      // A repeated member is forwarded once, as the full parser forwards it: its to find.
      if (!others.Add(key.raw)) return false;
    }
    if (!ScanMemberValue(scan, key.raw, member, reading)) return false;
    // The output cap travels in the member the provider names: UpstreamBody writes it.
    const bool cap = member == Member::kMaxTokens || member == Member::kMaxCompletionTokens;
    if (member != Member::kModel && !cap) {
      if (!first) out += ',';
      out.append(member_start, scan.pos());
      first = false;
    }
    if (!scan.NextOrClose('}', &more)) return false;
  }
  scan.SkipSpace();
  if (!scan.AtEnd() || reading->model.empty() || reading->message_count == 0) return false;
  if (reading->stream) {
    if (!first) out += ',';
    out += R"("stream_options":{"include_usage":true})";
  }
  out += '}';
  return true;
}

}  // namespace

std::optional<ModelRequest> FastParseChatRequest(std::string_view body) {
  Reading reading;
  if (!ScanBody(body, &reading)) return std::nullopt;
  ModelRequest request;
  request.endpoint = Endpoint::kChatCompletions;
  request.model = std::move(reading.model);
  request.stream = reading.stream;
  if (reading.max_tokens || reading.max_completion_tokens) {
    request.max_completion_tokens =
        std::max(reading.max_tokens.value_or(0), reading.max_completion_tokens.value_or(0));
    if (reading.max_completion_tokens.value_or(0) > reading.max_tokens.value_or(0)) {
      request.cap_member = "max_completion_tokens";
    }
  }
  request.choices = reading.choices.value_or(1);
  reading.conversation.overhead_tokens += kPerConversationTokens;
  request.prompt.inputs.push_back(reading.conversation);
  request.body_without_model = std::move(reading.body_without_model);
  return request;
}

}  // namespace keygate::proxy::internal
