#include "proxy/quote_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <string_view>

namespace keygate::proxy::internal {
namespace {

// Byte by byte, what the index finds by bitmaps.
size_t ReferenceNextQuote(const std::string& text, size_t at) {
  while (at < text.size() && text[at] != '"') ++at;
  return std::min(at, text.size());
}
size_t ReferenceStringEnd(const std::string& text, size_t open) {
  for (size_t at = open + 1; at < text.size(); ++at) {
    if (text[at] == '\\') {
      ++at;  // the escaped byte
    } else if (text[at] == '"') {
      return at;
    }
  }
  return QuoteIndex::npos;
}

TEST(QuoteIndexTest, FindsQuotesAndStringEnds) {
  QuoteIndex index(R"({"a":"b\"c","d\\":1} "x)");
  EXPECT_EQ(index.NextQuote(0), 1u);
  EXPECT_EQ(index.StringEnd(1), 3u);           // "a"
  EXPECT_EQ(index.StringEnd(5), 10u);          // "b\"c": the escaped quote is inside
  EXPECT_EQ(index.StringEnd(12), 16u);         // "d\\": the escaped backslash ends nothing
  EXPECT_EQ(index.StringEnd(21), QuoteIndex::npos);  // cut short
  EXPECT_EQ(index.NextQuote(22), 23u);         // the text's size: no quote left
  QuoteIndex empty("");
  EXPECT_EQ(empty.NextQuote(0), 0u);
  EXPECT_EQ(empty.StringEnd(0), QuoteIndex::npos);
  QuoteIndex trailing("\"ab\\");  // a backslash as the last byte escapes nothing left
  EXPECT_EQ(trailing.StringEnd(0), QuoteIndex::npos);
}

// At the edges of the 64-byte windows: a backslash as a window's last byte escapes the next
// window's first, and texts of exactly one and two windows end where they end.
TEST(QuoteIndexTest, HandlesTheWindowEdges) {
  std::string text = "\"" + std::string(62, 'a') + "\\\"b\"";  // \ at 63, the quote at 64
  QuoteIndex index(text);
  EXPECT_EQ(index.StringEnd(0), 66u);
  EXPECT_EQ(index.NextQuote(1), 64u);
  for (size_t size : {64, 128}) {
    const std::string full = "\"" + std::string(size - 2, 'x') + "\"";
    QuoteIndex whole(full);
    EXPECT_EQ(whole.StringEnd(0), size - 1) << size;
    EXPECT_EQ(whole.NextQuote(size - 1), size - 1) << size;
    EXPECT_EQ(whole.NextQuote(size), size) << size;
    const std::string escaped_end = "\"" + std::string(size - 2, 'x') + "\\";
    EXPECT_EQ(QuoteIndex(escaped_end).StringEnd(0), QuoteIndex::npos) << size;
  }
}

// Texts of quotes, backslashes and other bytes (runs of them crossing the 64-byte windows), of
// every length up to 300: the index agrees with the byte loops from every offset, asked in
// increasing order as the lexer asks, and in any order, and reads nothing past the text.
TEST(QuoteIndexTest, AgreesWithTheByteLoopsOnRandomTexts) {
  std::mt19937 random(20261206);
  const std::string alphabet = "\"\\ab{}[]:, \x80\xff";
  for (size_t size = 0; size <= 300; ++size) {
    for (int round = 0; round < 4; ++round) {
      std::string text;
      while (text.size() < size) {
        const char c = alphabet[random() % alphabet.size()];
        text.append(1 + random() % (round == 0 ? 1 : 40), c);
      }
      text.resize(size);
      SCOPED_TRACE(testing::PrintToString(text));
      // The index sees only the text, in a buffer whose bytes after it would all mark: a read
      // past its end would show.
      const std::string buffer = text + std::string(64, '"') + std::string(64, '\\');
      const std::string_view view(buffer.data(), size);
      QuoteIndex forward(view);
      for (size_t at = 0; at <= size; ++at) {
        ASSERT_EQ(forward.NextQuote(at), ReferenceNextQuote(text, at)) << at;
      }
      QuoteIndex strings(view);
      for (size_t at = 0; at < size; ++at) {
        if (text[at] != '"') continue;
        ASSERT_EQ(strings.StringEnd(at), ReferenceStringEnd(text, at)) << at;
      }
      QuoteIndex any_order(view);
      for (int i = 0; i < 20 && size > 0; ++i) {
        const size_t at = random() % size;
        ASSERT_EQ(any_order.NextQuote(at), ReferenceNextQuote(text, at)) << at;
        ASSERT_EQ(any_order.StringEnd(at), ReferenceStringEnd(text, at)) << at;
      }
    }
  }
}

}  // namespace
}  // namespace keygate::proxy::internal
