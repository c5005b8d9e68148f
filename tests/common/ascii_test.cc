#include "common/ascii.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>

namespace keygate {
namespace {

TEST(AsciiTest, HexValueReadsBothCasesAndRefusesEverythingElse) {
  EXPECT_EQ(AsciiHexValue('0'), 0);
  EXPECT_EQ(AsciiHexValue('9'), 9);
  EXPECT_EQ(AsciiHexValue('a'), 10);
  EXPECT_EQ(AsciiHexValue('F'), 15);
  for (char c : std::string("gG/:@`xX \xC3")) EXPECT_EQ(AsciiHexValue(c), -1) << c;
}

TEST(AsciiTest, CaseFoldingTouchesOnlyAsciiLetters) {
  EXPECT_EQ(AsciiLowered("OpenAI/GPT-4o \xC3\x89"), "openai/gpt-4o \xC3\x89");
  EXPECT_TRUE(AsciiIEquals("Content-Length", "content-length"));
  EXPECT_FALSE(AsciiIEquals("Content-Length", "content-lengths"));
  EXPECT_FALSE(AsciiIEquals("[", "{"));  // 0x5B and 0x7B differ by the case bit only
  // Every byte: only A-Z change, each to its own lower case.
  for (int c = 0; c < 256; ++c) {
    const char byte = static_cast<char>(c);
    const char expected = c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : byte;
    EXPECT_EQ(AsciiLower(byte), expected) << c;
    EXPECT_EQ(AsciiIEquals(std::string(1, byte), std::string(1, expected)), true) << c;
    if (expected != byte) {
      EXPECT_FALSE(AsciiIEquals(std::string(1, byte), "@")) << c;
    }
  }
}

TEST(AsciiTest, AppendDecimalWritesTheLimits) {
  std::string out = "n=";
  AppendDecimal(std::numeric_limits<int64_t>::min(), &out);
  out += ',';
  AppendDecimal(std::numeric_limits<uint64_t>::max(), &out);
  EXPECT_EQ(out, "n=-9223372036854775808,18446744073709551615");
}

// Eight at a time, every byte value at every position of a word folds as AsciiLower folds it.
TEST(AsciiTest, LowerInPlaceFoldsEveryByteAsAsciiLower) {
  std::mt19937 random(5);
  for (int round = 0; round < 5000; ++round) {
    std::string text(random() % 40, '\0');
    for (char& c : text) c = static_cast<char>(random() % 256);
    std::string expected = text;
    for (char& c : expected) c = AsciiLower(c);
    AsciiLowerInPlace(text.data(), text.size());
    ASSERT_EQ(text, expected);
  }
  std::string all(256, '\0');
  for (int c = 0; c < 256; ++c) all[static_cast<size_t>(c)] = static_cast<char>(c);
  std::string expected = all;
  for (char& c : expected) c = AsciiLower(c);
  EXPECT_EQ(AsciiLowered(all), expected);
}

// The word-at-a-time comparison answers as the byte-by-byte one for every field text (visible
// ASCII, space, tab) against lower-case targets of letters, digits and '-': at every length
// (each path: bytes, two half words, words with an overlapping last one), each byte of the
// text capitalized, replaced by any field byte, or left.
TEST(AsciiTest, FieldIEqualsAgreesWithAsciiIEquals) {
  const std::string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-";
  std::mt19937 random(11);
  for (int round = 0; round < 20000; ++round) {
    std::string lower(random() % 21, 'a');
    for (char& c : lower) c = alphabet[random() % alphabet.size()];
    std::string text = lower;
    for (char& c : text) {
      switch (random() % 4) {
        case 0:
          if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
          break;
        case 1:
          if (random() % 8 == 0) {
            c = random() % 2 == 0 ? '\t' : static_cast<char>(0x20 + random() % 95);
          }
          break;
        default:
          break;
      }
    }
    if (random() % 10 == 0 && !text.empty()) text.pop_back();
    ASSERT_EQ(FieldIEquals(text, lower), AsciiIEquals(text, lower)) << text << " / " << lower;
  }
  EXPECT_TRUE(FieldIEquals("Content-Length", "content-length"));
  EXPECT_TRUE(FieldIEquals("KEEP-ALIVE", "keep-alive"));
  EXPECT_FALSE(FieldIEquals("Content\tLength", "content-length"));  // a tab is not '-' either
  EXPECT_FALSE(FieldIEquals("Upgrad", "upgrade"));
}

}  // namespace
}  // namespace keygate
