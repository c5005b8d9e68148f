// The fast path of ParseChatRequest (see chat_fast_parse.h): one pass of Boost.JSON's SAX
// parser over the body, building no document, then a scan of the raw text that cuts the
// `model` member out. It accepts only the common shape and gives up (nullopt) on anything
// else, so that the document-building parser, which knows every rule and every error message,
// decides those bodies.
#include "proxy/chat_fast_parse.h"

#include <array>
#include <utility>

#include <boost/json/basic_parser_impl.hpp>

namespace keygate::proxy::internal {
namespace {

namespace json = boost::json;
using error_code = boost::system::error_code;

// Fields outside `messages` that the model reads as part of its prompt (as in
// openai_request.cc); here accepted only as strings or null.
constexpr std::array<std::string_view, 5> kPromptFields = {"tools", "functions", "tool_choice",
                                                           "function_call", "response_format"};

// The top-level members the request reads. Each may appear once.
enum class Member { kModel, kMessages, kMaxTokens, kMaxCompletionTokens, kChoices, kStream,
                    kPrompt, kOther };

// The member `key` names and the bit that marks it seen (0 for kOther, which is not tracked).
std::pair<Member, unsigned> MemberOf(std::string_view key) {
  constexpr std::array<std::pair<std::string_view, Member>, 6> kRead = {{
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
  return {Member::kOther, 0};
}

// The SAX handler. Returning false stops the parser; `gave_up` then says the body is not of
// the common shape (as opposed to not being JSON at all).
class Handler {
 public:
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);

  bool gave_up = false;
  std::string model;
  bool has_messages = false;
  size_t message_count = 0;
  InputSize conversation;
  std::optional<int64_t> max_tokens;
  std::optional<int64_t> max_completion_tokens;
  std::optional<int64_t> choices;
  bool stream = false;

  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_comment_part(json::string_view, error_code& ec) { return GiveUp(ec); }
  bool on_comment(json::string_view, error_code& ec) { return GiveUp(ec); }

  bool on_object_begin(error_code& ec) {
    if (depth_ == 0) return Enter();  // the body
    if (skipping_ > 0 || (depth_ == 1 && member_ == Member::kOther)) return Skip();
    if (depth_ == 2 && member_ == Member::kMessages) {  // a message
      has_role_ = false;
      ++message_count;
      return Enter();
    }
    return GiveUp(ec);
  }
  bool on_object_end(std::size_t, error_code& ec) {
    if (skipping_ > 0) return Unskip();
    if (depth_ == 3) {  // a message
      if (!has_role_) return GiveUp(ec);
      conversation.overhead_tokens += kPerMessageTokens;
    }
    --depth_;
    return true;
  }
  bool on_array_begin(error_code& ec) {
    if (depth_ == 0) return GiveUp(ec);
    if (skipping_ > 0 || (depth_ == 1 && member_ == Member::kOther)) return Skip();
    if (depth_ == 1 && member_ == Member::kMessages) {
      has_messages = true;
      return Enter();
    }
    return GiveUp(ec);
  }
  bool on_array_end(std::size_t, error_code&) {
    if (skipping_ > 0) return Unskip();
    --depth_;
    return true;
  }

  bool on_key_part(json::string_view s, std::size_t, error_code&) {
    if (skipping_ == 0) key_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, error_code& ec) {
    if (skipping_ > 0) return true;
    key_.append(s.data(), s.size());
    const bool ok = depth_ == 1 ? OnMemberKey(ec) : OnMessageKey(ec);
    key_.clear();
    return ok;
  }

  bool on_string_part(json::string_view s, std::size_t, error_code&) {
    if (skipping_ == 0 && depth_ == 1 && member_ == Member::kModel) model.append(s.data(), s.size());
    return true;
  }
  bool on_string(json::string_view s, std::size_t n, error_code& ec) {
    if (skipping_ > 0) return true;
    if (depth_ == 3) {  // a message's field
      if (message_key_ == "role") has_role_ = true;
      conversation.text_bytes += static_cast<int64_t>(n);
      return true;
    }
    if (depth_ != 1) return GiveUp(ec);  // a message that is a string
    switch (member_) {
      case Member::kModel:
        model.append(s.data(), s.size());
        return true;
      case Member::kPrompt:
        conversation.text_bytes += static_cast<int64_t>(n);
        return true;
      case Member::kOther:
        return true;
      default:
        return GiveUp(ec);
    }
  }

  bool on_number_part(json::string_view, error_code&) { return true; }
  bool on_int64(std::int64_t i, json::string_view, error_code& ec) {
    if (skipping_ > 0) return true;
    if (depth_ != 1) return GiveUp(ec);
    switch (member_) {
      case Member::kMaxTokens:
        return Bounded(i, kMaxCompletionTokensField, &max_tokens, ec);
      case Member::kMaxCompletionTokens:
        return Bounded(i, kMaxCompletionTokensField, &max_completion_tokens, ec);
      case Member::kChoices:
        return Bounded(i, kMaxChoices, &choices, ec);
      case Member::kOther:
        return true;
      default:
        return GiveUp(ec);
    }
  }
  bool on_uint64(std::uint64_t, json::string_view, error_code& ec) { return Scalar(ec); }
  bool on_double(double, json::string_view, error_code& ec) { return Scalar(ec); }
  bool on_bool(bool b, error_code& ec) {
    if (skipping_ > 0) return true;
    if (depth_ == 1 && member_ == Member::kStream) {
      stream = b;
      return true;
    }
    return Scalar(ec);
  }
  bool on_null(error_code& ec) {
    if (skipping_ > 0) return true;
    if (depth_ == 3) {
      if (message_key_ == "role") return GiveUp(ec);
      return true;  // a field read as nothing (content: null)
    }
    // A null top-level member reads as absent, except for model and messages.
    return depth_ == 1 && member_ != Member::kModel && member_ != Member::kMessages
               ? true
               : GiveUp(ec);
  }

 private:
  bool GiveUp(error_code& ec) {
    gave_up = true;
    ec = json::error::exception;  // any error: the parser stops
    return false;
  }
  bool Enter() {
    ++depth_;
    return true;
  }
  bool Skip() {
    ++skipping_;
    return true;
  }
  bool Unskip() {
    --skipping_;
    return true;
  }
  // A number or boolean where the fast path reads nothing.
  bool Scalar(error_code& ec) {
    if (skipping_ > 0 || (depth_ == 1 && member_ == Member::kOther)) return true;
    return GiveUp(ec);
  }
  bool Bounded(int64_t value, int64_t max, std::optional<int64_t>* out, error_code& ec) {
    if (value < 1 || value > max) return GiveUp(ec);
    *out = value;
    return true;
  }
  bool OnMemberKey(error_code& ec) {
    const auto [member, bit] = MemberOf(key_);
    member_ = member;
    // stream_options, and a member read twice, are the slow path's.
    if (member == Member::kOther) return key_ == "stream_options" ? GiveUp(ec) : true;
    if ((seen_ & bit) != 0) return GiveUp(ec);
    seen_ |= bit;
    return true;
  }
  bool OnMessageKey(error_code& ec) {
    // Only flat messages of strings and nulls; an audio reference is the slow path's.
    if (key_ == "audio") return GiveUp(ec);
    if (key_ == "role" && has_role_) return GiveUp(ec);
    message_key_ = key_;
    return true;
  }

  int depth_ = 0;     // 1 in the body, 2 in messages, 3 in a message
  int skipping_ = 0;  // nesting inside a member the request does not read
  Member member_ = Member::kOther;
  unsigned seen_ = 0;
  bool has_role_ = false;
  std::string key_;
  std::string message_key_;
};

// ---- cutting `model` out of the raw text -------------------------------------------------

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

// The index after the string that starts at s[i] == '"', or npos.
size_t SkipString(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// The index after the value that starts at s[i], or npos. The text is valid JSON already.
size_t SkipValue(std::string_view s, size_t i) {
  if (i >= s.size()) return std::string_view::npos;
  if (s[i] == '"') return SkipString(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = SkipString(s, i);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return std::string_view::npos;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
         s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
    ++i;
  }
  return i;
}

// "{...}" holding every top-level member of `body` but `model`, each as written, and for a
// stream "stream_options":{"include_usage":true} (the body had no stream_options). nullopt if
// a member name is escaped (the slow path decides what it means).
std::optional<std::string> WithoutModel(std::string_view body, bool stream) {
  std::string out;
  out.reserve(body.size() + 40);
  out += '{';
  size_t i = SkipSpace(body, 0);
  if (i >= body.size() || body[i] != '{') return std::nullopt;
  i = SkipSpace(body, i + 1);
  bool first = true;
  while (i < body.size() && body[i] != '}') {
    const size_t key_start = i;
    const size_t key_end = SkipString(body, i);
    if (key_end == std::string_view::npos) return std::nullopt;
    const std::string_view key = body.substr(key_start + 1, key_end - key_start - 2);
    if (key.find('\\') != std::string_view::npos) return std::nullopt;
    i = SkipSpace(body, key_end);
    if (i >= body.size() || body[i] != ':') return std::nullopt;
    const size_t value_end = SkipValue(body, SkipSpace(body, i + 1));
    if (value_end == std::string_view::npos) return std::nullopt;
    if (key != "model") {
      if (!first) out += ',';
      out.append(body.substr(key_start, value_end - key_start));
      first = false;
    }
    i = SkipSpace(body, value_end);
    if (i < body.size() && body[i] == ',') i = SkipSpace(body, i + 1);
  }
  if (stream) {
    if (!first) out += ',';
    out += R"("stream_options":{"include_usage":true})";
  }
  out += '}';
  return out;
}

}  // namespace

std::optional<ModelRequest> FastParseChatRequest(std::string_view body) {
  json::basic_parser<Handler> parser{json::parse_options{}};
  error_code ec;
  const size_t used = parser.write_some(false, body.data(), body.size(), ec);
  Handler& h = parser.handler();
  // Only whitespace may follow the document.
  if (ec || !parser.done() || SkipSpace(body, used) != body.size() || h.model.empty() ||
      !h.has_messages || h.message_count == 0) {
    return std::nullopt;
  }
  std::optional<std::string> rest = WithoutModel(body, h.stream);
  if (!rest) return std::nullopt;
  ModelRequest request;
  request.endpoint = Endpoint::kChatCompletions;
  request.model = std::move(h.model);
  request.stream = h.stream;
  if (h.max_tokens || h.max_completion_tokens) {
    request.max_completion_tokens =
        std::max(h.max_tokens.value_or(0), h.max_completion_tokens.value_or(0));
  }
  request.choices = h.choices.value_or(1);
  h.conversation.overhead_tokens += kPerConversationTokens;
  request.prompt.inputs.push_back(h.conversation);
  request.body_without_model = std::move(*rest);
  return request;
}

}  // namespace keygate::proxy::internal
