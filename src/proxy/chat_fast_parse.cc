// The fast path of ParseChatRequest (see chat_fast_parse.h): one pass of a scanner over the
// raw text that checks the JSON, reads the members the request needs and copies every other
// member into body_without_model as written. It knows only the common shape and gives up
// (nullopt) on anything else, and on anything it cannot be sure of: the document-building
// parser, which knows every rule and every error message, decides those bodies. So the scanner
// may be stricter than JSON but never looser: a body it accepts is valid JSON to Boost.JSON's
// parser (UTF-8 checked, no comments, no trailing commas, nesting within its limit).
#include "proxy/chat_fast_parse.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "common/ascii.h"

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
  if (key == "stream_options") return {Member::kStreamOptions, 0};
  return {Member::kOther, 0};
}

// Nesting the scanner follows inside members it does not read; deeper gives up (Boost.JSON's
// parser refuses beyond 32 levels, counting the body).
constexpr int kMaxSkipDepth = 24;

// Bytes a string may hold as they are: printable ASCII but the quote and the backslash.
constexpr std::array<bool, 256> kPlainByte = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

constexpr int kHexDigits = 4;  // of a \u escape

// A string as scanned: the raw text between the quotes, and its length once unescaped.
struct ScannedString {
  std::string_view raw;
  int64_t decoded_bytes = 0;
  bool escaped = false;
};

// The scanner: a cursor over the body. Every Scan* function returns false to give up and
// leaves the cursor just past what it read otherwise.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  const char* pos() const { return p_; }
  bool AtEnd() const { return p_ == end_; }
  char Peek() const { return p_ < end_ ? *p_ : '\0'; }

  void SkipSpace() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  // Consumes `c`, after any whitespace.
  bool Expect(char c) {
    SkipSpace();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  // After a member or an element (and any whitespace): a comma (*more = true) or `close`
  // (*more = false); anything else gives up.
  bool NextOrClose(char close, bool* more) {
    SkipSpace();
    if (p_ == end_) return false;
    if (*p_ == ',') {
      ++p_;
      *more = true;
      return true;
    }
    if (*p_ != close) return false;
    ++p_;
    *more = false;
    return true;
  }

  // A string starting at the cursor (after whitespace).
  bool ScanString(ScannedString* out) {
    if (!Expect('"')) return false;
    const char* start = p_;
    int64_t escape_savings = 0;  // raw bytes an escape takes beyond what it decodes to
    for (;;) {
      p_ = SkipPlain(p_, end_);
      if (p_ == end_) return false;
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') break;
      if (c == '\\') {
        int decoded = 0;
        const char* escape = p_;
        if (!ScanEscape(&decoded)) return false;
        escape_savings += (p_ - escape) - decoded;
        out->escaped = true;
      } else if (c >= 0x80) {
        if (!ScanUtf8()) return false;
      } else {
        return false;  // a control character
      }
    }
    out->raw = std::string_view(start, static_cast<size_t>(p_ - start));
    out->decoded_bytes = static_cast<int64_t>(out->raw.size()) - escape_savings;
    ++p_;  // the closing quote
    return true;
  }

  // A number starting at the cursor (after whitespace). *integer is set when it has no
  // fraction, with its value in *value. Gives up on exponents and on more than 18 integer
  // digits: those the full parser reads.
  bool ScanNumber(bool* integer, int64_t* value) {
    SkipSpace();
    const bool negative = p_ < end_ && *p_ == '-';
    if (negative) ++p_;
    const char* digits = p_;
    int64_t magnitude = 0;
    while (p_ < end_ && IsDigit(*p_)) magnitude = magnitude * 10 + (*p_++ - '0');
    const auto count = p_ - digits;
    constexpr ptrdiff_t kMaxDigits = 18;
    if (count == 0 || count > kMaxDigits || (count > 1 && *digits == '0')) return false;
    *integer = true;
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      const char* fraction = p_;
      while (p_ < end_ && IsDigit(*p_)) ++p_;
      if (p_ == fraction) return false;
      *integer = false;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) return false;
    *value = negative ? -magnitude : magnitude;
    return true;
  }

  // `word` (true, false or null) at the cursor (after whitespace).
  bool ScanLiteral(std::string_view word) {
    SkipSpace();
    if (static_cast<size_t>(end_ - p_) < word.size() ||
        std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  // Any JSON value, checked and not kept. `depth` counts the containers around it.
  bool SkipValue(int depth) {
    SkipSpace();
    switch (Peek()) {
      case '"': {
        ScannedString ignored;
        return ScanString(&ignored);
      }
      case '{':
        return depth < kMaxSkipDepth && SkipContainer('}', depth + 1);
      case '[':
        return depth < kMaxSkipDepth && SkipContainer(']', depth + 1);
      case 't':
        return ScanLiteral("true");
      case 'f':
        return ScanLiteral("false");
      case 'n':
        return ScanLiteral("null");
      default: {
        bool integer = false;
        int64_t value = 0;
        return ScanNumber(&integer, &value);
      }
    }
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  // The first byte at or after `p` that a string may not hold as it is. On locals: a char
  // load may alias the member p_, which would make the compiler store it for every byte.
  // Eight bytes at a time while they last (prompts are long): a byte is not plain when it is
  // below 0x20, a quote, a backslash, or has its high bit set. The zero-byte tests can flag a
  // byte above a flagged one by their borrow, never one below, so the lowest flag is true.
  static const char* SkipPlain(const char* p, const char* end) {
    constexpr uint64_t kOnes = 0x0101010101010101ULL;
    constexpr uint64_t kHighs = 0x8080808080808080ULL;
    constexpr size_t kWord = sizeof(uint64_t);
    static_assert(std::endian::native == std::endian::little);
    while (static_cast<size_t>(end - p) >= kWord) {
      uint64_t w = 0;
      std::memcpy(&w, p, kWord);
      const uint64_t below_space = w - kOnes * 0x20;
      const uint64_t quote = (w ^ (kOnes * '"')) - kOnes;
      const uint64_t backslash = (w ^ (kOnes * '\\')) - kOnes;
      const uint64_t flags = ((below_space | quote | backslash) & ~w & kHighs) | (w & kHighs);
      if (flags != 0) return p + std::countr_zero(flags) / 8;
      p += kWord;
    }
    while (p < end && kPlainByte[static_cast<unsigned char>(*p)]) ++p;
    return p;
  }

  // An escape at the cursor (a backslash); *decoded is the bytes it stands for in UTF-8.
  // Surrogates (\uD800-\uDFFF) give up: pairing them is the full parser's business.
  bool ScanEscape(int* decoded) {
    ++p_;
    if (p_ == end_) return false;
    const char kind = *p_++;
    switch (kind) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        *decoded = 1;
        return true;
      case 'u':
        break;
      default:
        return false;
    }
    if (end_ - p_ < kHexDigits) return false;
    int code_point = 0;
    for (int i = 0; i < kHexDigits; ++i) {
      const int digit = AsciiHexValue(*p_++);
      if (digit < 0) return false;
      code_point = code_point * 16 + digit;
    }
    if (code_point >= 0xD800 && code_point <= 0xDFFF) return false;
    *decoded = code_point < 0x80 ? 1 : code_point < 0x800 ? 2 : 3;
    return true;
  }

  // A multi-byte UTF-8 sequence at the cursor, well formed by RFC 3629 (no overlong forms, no
  // surrogates, nothing above U+10FFFF).
  bool ScanUtf8() {
    const auto lead = static_cast<unsigned char>(*p_);
    int continuation = 0;
    unsigned char low = 0x80;  // the range of the first continuation byte
    unsigned char high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      continuation = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      continuation = 2;
      if (lead == 0xE0) low = 0xA0;
      if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      continuation = 3;
      if (lead == 0xF0) low = 0x90;
      if (lead == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    if (end_ - p_ <= continuation) return false;
    for (int i = 1; i <= continuation; ++i) {
      const auto byte = static_cast<unsigned char>(p_[i]);
      if (byte < low || byte > high) return false;
      low = 0x80;
      high = 0xBF;
    }
    p_ += 1 + continuation;
    return true;
  }

  // An object or array whose opening bracket is at the cursor.
  bool SkipContainer(char close, int depth) {
    ++p_;
    SkipSpace();
    if (Peek() == close) {
      ++p_;
      return true;
    }
    for (bool more = true; more;) {
      if (close == '}') {
        ScannedString key;
        if (!ScanString(&key) || !Expect(':')) return false;
      }
      if (!SkipValue(depth) || !NextOrClose(close, &more)) return false;
    }
    return true;
  }

  const char* p_;
  const char* end_;
};

// An escaped string's text, unescaped. REQUIRES: `raw` passed ScanString (so every escape is
// well formed and no \u escape is a surrogate).
std::string Unescape(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\\') {
      out += raw[i];
      continue;
    }
    const char kind = raw[++i];
    switch (kind) {
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        unsigned code_point = 0;
        for (int digit = 0; digit < kHexDigits; ++digit) {
          code_point = code_point * 16 + static_cast<unsigned>(AsciiHexValue(raw[++i]));
        }
        if (code_point < 0x80) {
          out += static_cast<char>(code_point);
        } else if (code_point < 0x800) {
          out += static_cast<char>(0xC0 | (code_point >> 6));
          out += static_cast<char>(0x80 | (code_point & 0x3F));
        } else {
          out += static_cast<char>(0xE0 | (code_point >> 12));
          out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (code_point & 0x3F));
        }
        break;
      }
      default: out += kind; break;  // " \ /
    }
  }
  return out;
}

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
// with exactly one string `role` and no `audio`. Its strings count toward the prompt.
bool ScanMessage(Scanner& scan, InputSize* conversation) {
  if (!scan.Expect('{')) return false;
  bool has_role = false;
  for (bool more = true; more;) {
    ScannedString key;
    if (!scan.ScanString(&key) || key.escaped || key.raw == "audio" || !scan.Expect(':')) {
      return false;
    }
    const bool role = key.raw == "role";
    scan.SkipSpace();
    if (scan.Peek() == '"') {
      ScannedString value;
      if (!scan.ScanString(&value) || (role && has_role)) return false;
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

// The value of the top-level member `member`, at the cursor.
bool ScanMemberValue(Scanner& scan, Member member, Reading* reading) {
  scan.SkipSpace();
  switch (member) {
    case Member::kModel: {
      ScannedString model;
      if (!scan.ScanString(&model) || model.raw.empty()) return false;
      reading->model = model.escaped ? Unescape(model.raw) : std::string(model.raw);
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
        if (!scan.ScanString(&text)) return false;
        reading->conversation.text_bytes += text.decoded_bytes;
        return true;
      }
    case Member::kStreamOptions:
      return false;
    case Member::kOther:
      return scan.SkipValue(1);
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
    if (!ScanMemberValue(scan, member, reading)) return false;
    if (member != Member::kModel) {
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
  }
  request.choices = reading.choices.value_or(1);
  reading.conversation.overhead_tokens += kPerConversationTokens;
  request.prompt.inputs.push_back(reading.conversation);
  request.body_without_model = std::move(reading.body_without_model);
  return request;
}

}  // namespace keygate::proxy::internal
