// A strict JSON scanner over raw text, for the data plane's fast paths (the chat request's
// body, the usage object of an answer): a cursor that checks what it passes and keeps views,
// never a document. It knows the common shapes only and gives up (false) on anything it cannot
// be sure of, so that a caller falls back to Boost.JSON's parser: it may be stricter than JSON
// but never looser (UTF-8 checked, no comments, no trailing commas, nesting within a limit
// below Boost.JSON's).
//
// Thread safety: a Scanner is one caller's; the tables are constant.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/ascii.h"
#include "common/byte_words.h"
#include "common/utf8.h"

namespace keygate::proxy::internal {

// Nesting the scanner follows inside members it does not read; deeper gives up (the full
// parser refuses beyond kMaxBodyDepth levels, counting the body).
inline constexpr int kMaxSkipDepth = 24;

// Bytes a string may hold as they are: printable ASCII but the quote and the backslash.
inline constexpr std::array<bool, 256> kPlainByte = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x80; ++c) plain[c] = c != '"' && c != '\\';
  return plain;
}();

inline constexpr int kHexDigits = 4;  // of a \u escape

// JSON whitespace. One comparison for the usual byte (compact JSON has no space between its
// tokens): every JSON space is at most ' '.
constexpr bool IsJsonSpace(char c) {
  return static_cast<unsigned char>(c) <= ' ' && (c == ' ' || c == '\n' || c == '\r' || c == '\t');
}

// A string as scanned: the raw text between the quotes, and its length once unescaped.
struct ScannedString {
  std::string_view raw;
  int64_t decoded_bytes = 0;
  bool escaped = false;
};

// The scanner: a cursor over the text. Every Scan* function returns false to give up and
// leaves the cursor just past what it read otherwise.
class Scanner {
 public:
  explicit Scanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  const char* pos() const { return p_; }
  bool AtEnd() const { return p_ == end_; }
  char Peek() const { return p_ < end_ ? *p_ : '\0'; }

  void SkipSpace() {
    while (p_ < end_ && IsJsonSpace(*p_)) ++p_;
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
    constexpr ptrdiff_t kMaxDigits = 18;
    // Digits past the 18th are skipped, not added: they would overflow int64_t (UB, found by
    // UBSan: audit U), and the number goes to the full parser anyway.
    for (; p_ < end_ && IsDigit(*p_); ++p_) {
      if (p_ - digits < kMaxDigits) magnitude = magnitude * 10 + (*p_ - '0');
    }
    const auto count = p_ - digits;
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
  // Sixteen or eight bytes at a time while they last (prompts are long): a byte is not plain
  // when it is below 0x20, a quote, a backslash, or has its high bit set.
  static const char* SkipPlain(const char* p, const char* end) {
    if (byte_words::SkipUnmarkedBlocks(&p, end, [](byte_words::Block b) {
          using namespace byte_words;
          return BelowOrHighMask(b, 0x20) | EqualMask(b, '"') | EqualMask(b, '\\');
        })) {
      return p;
    }
    p = byte_words::SkipUnmarked(p, end, [](uint64_t w) {
      using namespace byte_words;
      return Below(w, 0x20) | Equal(w, '"') | Equal(w, '\\') | High(w);
    });
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
    const size_t length = Utf8SequenceLength(std::string_view(p_, static_cast<size_t>(end_ - p_)));
    p_ += length;
    return length > 0;
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

}  // namespace keygate::proxy::internal
