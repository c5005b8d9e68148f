#include "common/json_text.h"

#include <gtest/gtest.h>

#include <string>

namespace keygate {
namespace {

TEST(JsonTextTest, ObjectMembersAreReadAsWrittenInOrderWithRepeats) {
  const auto members = ObjectMembers(
      " { \"a\" : 1e400 , \"b\\u0022\":{\"x\":[1,\"]}\"]},\"a\":\"s\\\"}\" ,\"c\":[ ]} ");
  ASSERT_EQ(members.size(), 4u);
  EXPECT_EQ(members[0].raw_name, "a");
  EXPECT_EQ(members[0].value, "1e400");
  EXPECT_EQ(members[1].raw_name, "b\\u0022");
  EXPECT_EQ(members[1].value, "{\"x\":[1,\"]}\"]}");
  EXPECT_EQ(members[2].value, "\"s\\\"}\"");
  EXPECT_EQ(members[3].value, "[ ]");
  EXPECT_TRUE(ObjectMembers("{}").empty());
  EXPECT_TRUE(ObjectMembers("[1]").empty());
}

TEST(JsonTextTest, ArrayElementsAreReadAsWrittenInOrder) {
  const auto elements = ArrayElements(" [ 1e400 , {\"a\":\"],\"} ,\"x\\\"]\",[ ],-0.0 ] ");
  ASSERT_EQ(elements.size(), 5u);
  EXPECT_EQ(elements[0], "1e400");
  EXPECT_EQ(elements[1], "{\"a\":\"],\"}");
  EXPECT_EQ(elements[2], "\"x\\\"]\"");
  EXPECT_EQ(elements[3], "[ ]");
  EXPECT_EQ(elements[4], "-0.0");
  EXPECT_TRUE(ArrayElements("[]").empty());
  EXPECT_TRUE(ArrayElements(" [ ] ").empty());
  EXPECT_TRUE(ArrayElements("{\"a\":1}").empty());
}

TEST(JsonTextTest, UnescapeDecodesEveryEscapeAndSurrogatePairs) {
  EXPECT_EQ(JsonUnescape(R"(\"\\\/\b\f\n\r\t)"), "\"\\/\b\f\n\r\t");
  EXPECT_EQ(JsonUnescape(R"(caf\u00e9 \u4E2D \ud83d\ude42)"),
            "caf\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x99\x82");
  EXPECT_EQ(JsonUnescape("plain"), "plain");
  EXPECT_TRUE(JsonNameIs(R"(\u006dodel)", "model"));
  EXPECT_TRUE(JsonNameIs("model", "model"));
  EXPECT_FALSE(JsonNameIs(R"(\u006dodels)", "model"));
}

TEST(JsonTextTest, CompactJsonDropsSpaceOutsideStrings) {
  EXPECT_EQ(CompactJson("{ \"a b\" : [ 1 ,\n 2.50 ] }"), "{\"a b\":[1,2.50]}");
}

}  // namespace
}  // namespace keygate
