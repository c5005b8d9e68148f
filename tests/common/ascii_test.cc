#include "common/ascii.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
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

}  // namespace
}  // namespace keygate
