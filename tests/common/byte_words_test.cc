#include "common/byte_words.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>

namespace keygate {
namespace {

// The word-at-a-time scan stops where a byte-by-byte scan would (or at the last bytes that do
// not fill a word), for every mask, whatever bytes surround the one to find.
TEST(ByteWordsTest, StopsAtTheFirstMarkedByteLikeAByteByByteScan) {
  const auto stop = [](unsigned char c) {
    return c < 0x20 || c == '"' || c == 0x7F || c >= 0x80;
  };
  const auto marks = [](uint64_t w) {
    using namespace byte_words;
    return Below(w, 0x20) | Equal(w, '"') | Equal(w, 0x7F) | High(w);
  };
  std::mt19937 random(7);
  for (int round = 0; round < 20000; ++round) {
    std::string text(1 + random() % 70, 'a');
    for (char& c : text) {
      // Mostly plain bytes, and now and then one to stop at or one next to those values.
      const unsigned char pick[] = {'a', 'z', ' ', '!', '#', '"', 0x1F, 0x20, 0x7E, 0x7F,
                                    0x80, 0xFF, 0x00, 0x21, 0x23, 0x01};
      c = static_cast<char>(random() % 4 == 0 ? pick[random() % sizeof pick]
                                              : 'a' + random() % 26);
    }
    const char* begin = text.data();
    const char* end = begin + text.size();
    const char* expected = begin;
    while (expected < end && !stop(static_cast<unsigned char>(*expected))) ++expected;
    // Within the whole words it finds the byte itself; past them it leaves the rest to the
    // caller.
    const char* words_end = begin + text.size() / byte_words::kWord * byte_words::kWord;
    EXPECT_EQ(byte_words::SkipUnmarked(begin, end, marks), std::min(expected, words_end)) << text;
    // Sixteen at a time (SSE2), the same way; where the blocks are not built, they move not.
    const auto block_marks = [](byte_words::Block b) {
      using namespace byte_words;
      return BelowOrHighMask(b, 0x20) | EqualMask(b, '"') | EqualMask(b, 0x7F);
    };
    const char* blocks_end =
        byte_words::kBlock == 0 ? begin
                                : begin + text.size() / byte_words::kBlock * byte_words::kBlock;
    const char* at = begin;
    const bool stopped = byte_words::SkipUnmarkedBlocks(&at, end, block_marks);
    EXPECT_EQ(at, std::min(expected, blocks_end)) << text;
    EXPECT_EQ(stopped, expected < blocks_end) << text;
  }
}

}  // namespace
}  // namespace keygate
