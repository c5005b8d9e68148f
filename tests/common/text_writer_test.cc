#include "common/text_writer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

#include "common/ascii.h"
#include "common/find_bytes.h"

namespace keygate {
namespace {

TEST(TextWriterTest, AppendsAfterWhatTheStringHoldsAndTrimsTheRoomLeft) {
  std::string text = "head:";
  {
    TextWriter out(&text, 64);
    out.append(" one").push_back(',').append("two", 3);
    AppendDecimal(std::numeric_limits<int64_t>::min(), &out);
  }  // the destructor finishes
  EXPECT_EQ(text, "head: one,two-9223372036854775808");
}

// A default string_view's data is null: appending it copies nothing (and calls no memcpy on
// null, UB even for no bytes: UBSan, audit U). FindBytes likewise never passes it to memmem.
TEST(TextWriterTest, AnEmptyViewWithoutDataAppendsNothing) {
  std::string text = "x";
  {
    TextWriter out(&text, 8);
    out.append(std::string_view()).append("y");
  }
  EXPECT_EQ(text, "xy");
  EXPECT_EQ(FindBytes(std::string_view(), "key"), std::string_view::npos);
  EXPECT_EQ(FindBytes(std::string_view(), std::string_view()), 0u);
  EXPECT_EQ(FindBytes("abc", std::string_view(), 2), 2u);
  EXPECT_EQ(FindBytes("abc", "c", 3), std::string_view::npos);
  EXPECT_EQ(FindBytes("abcabc", "bc", 2), 4u);
  EXPECT_EQ(FindBytes("ab", "abc"), std::string_view::npos);
}

TEST(TextWriterTest, AnEstimateTooSmallGrowsTheStringInsteadOfOverflowing) {
  for (size_t estimate : {0u, 1u, 7u, 100u}) {
    std::string text;
    std::string expected;
    TextWriter out(&text, estimate);
    for (int i = 0; i < 200; ++i) {
      const std::string piece(static_cast<size_t>(i % 17), static_cast<char>('a' + i % 26));
      out.append(piece).push_back('|');
      AppendDecimal(i, &out);
      expected += piece + "|" + std::to_string(i);
    }
    out.Finish();
    out.Finish();  // idempotent
    EXPECT_EQ(text, expected) << estimate;
  }
}

}  // namespace
}  // namespace keygate
