// Where the strings of a JSON text are, 64 bytes at a time, for the stream event lexer
// (openai_response.cc, ReadEvent): for each 64-byte window of the text, a bitmap of its quotes
// and one of its backslashes (made sixteen bytes at a time with SSE2 where the compiler targets
// it, byte by byte elsewhere). The next quote, or the end of a string, is then a bit scan, and
// one window's masks serve every string and gap in it: fewer branches than a scan string by
// string (`bench/relay_bench`).
//
// Offsets are into the text. The index keeps one window's masks: calls that go forward through
// the text (as a lexer's do) make each window's masks once.
//
// Thread safety: one index per text, on one thread.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "common/byte_words.h"

namespace keygate::proxy::internal {

class QuoteIndex {
 public:
  static constexpr size_t npos = std::string_view::npos;

  explicit QuoteIndex(std::string_view text) : text_(text) {}

  // The offset of the first quote at or after `at`, or the text's size if there is none.
  size_t NextQuote(size_t at) {
    while (at < text_.size()) {
      Load(at / kWindow);
      const uint64_t quotes = quotes_ & LiveFrom(at);
      if (quotes != 0) return Offset(quotes);
      at = (window_ + 1) * kWindow;
    }
    return text_.size();
  }

  // The offset of the quote that closes the string whose opening quote is at `open`, a
  // backslash escaping the byte after it; npos if the text ends first.
  size_t StringEnd(size_t open) {
    size_t at = open + 1;
    while (at < text_.size()) {
      Load(at / kWindow);
      const uint64_t live = LiveFrom(at);
      const uint64_t quotes = quotes_ & live;
      const uint64_t backslashes = backslashes_ & live;
      const uint64_t before_quote =
          quotes == 0 ? ~uint64_t{0} : (uint64_t{1} << std::countr_zero(quotes)) - 1;
      if ((backslashes & before_quote) != 0) {
        at = Offset(backslashes) + 2;  // past the escape and the byte it escapes
        continue;
      }
      if (quotes != 0) return Offset(quotes);
      at = (window_ + 1) * kWindow;
    }
    return npos;
  }

 private:
  static constexpr size_t kWindow = 64;

  static uint64_t LiveFrom(size_t at) { return ~uint64_t{0} << (at % kWindow); }
  // The offset of the lowest bit of `marks`, a mask of the current window.
  size_t Offset(uint64_t marks) const {
    return window_ * kWindow + static_cast<size_t>(std::countr_zero(marks));
  }

  void Load(size_t window) {
    if (window == window_) return;
    window_ = window;
    const size_t start = window * kWindow;
    const char* p = text_.data() + start;
    const size_t size = std::min(kWindow, text_.size() - start);
    quotes_ = 0;
    backslashes_ = 0;
    size_t i = 0;
    if constexpr (byte_words::kBlock != 0) {
      for (; i + byte_words::kBlock <= size; i += byte_words::kBlock) {
        byte_words::Block block;
        std::memcpy(&block, p + i, sizeof block);
        quotes_ |= uint64_t{byte_words::EqualMask(block, '"')} << i;
        backslashes_ |= uint64_t{byte_words::EqualMask(block, '\\')} << i;
      }
    }
    for (; i < size; ++i) {  // the text's last bytes (all of them without SSE2)
      quotes_ |= uint64_t{p[i] == '"'} << i;
      backslashes_ |= uint64_t{p[i] == '\\'} << i;
    }
  }

  std::string_view text_;
  size_t window_ = npos;  // the window whose masks are loaded
  uint64_t quotes_ = 0;
  uint64_t backslashes_ = 0;
};

}  // namespace keygate::proxy::internal
