#include "dialects/common/json_input.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <optional>
#include <string>

namespace keygate::dialects {
namespace {

TEST(CompactMemberTextTest, KeepsTheValueAsWrittenWithoutTheSpaceBetweenTokens) {
  EXPECT_EQ(CompactMemberText(R"({"a":1,"metadata": { "x" : 1.0 , "y":[ 2e3 ,-0.0] }})",
                              "metadata"),
            R"({"x":1.0,"y":[2e3,-0.0]})");
  // Space inside strings stays, and so do escapes, a quote or a backslash before a quote.
  EXPECT_EQ(CompactMemberText(R"( {"m" :{"s":"a  \" } b\\"}} )", "m"), R"({"s":"a  \" } b\\"})");
  EXPECT_EQ(CompactMemberText("{\n\t\"m\"\r\n:\n123456789012345678901234567890\n}", "m"),
            "123456789012345678901234567890");
  EXPECT_EQ(CompactMemberText(R"({"m":"text","n":true})", "n"), "true");
}

TEST(CompactMemberTextTest, FindsTopLevelMembersOnlyTheLastOfARepeatedName) {
  // The parser keeps the last of a repeated name; so does this.
  EXPECT_EQ(CompactMemberText(R"({"m":{"v":1},"m":{"v":2}})", "m"), R"({"v":2})");
  // A member of the same name inside another member is not the top-level one.
  EXPECT_EQ(CompactMemberText(R"({"o":{"m":{"inner":1}},"m":{"top":1}})", "m"), R"({"top":1})");
  EXPECT_EQ(CompactMemberText(R"({"o":{"m":{"inner":1}}})", "m"), std::nullopt);
  EXPECT_EQ(CompactMemberText(R"({"o":"\"m\":{}"})", "m"), std::nullopt);
  // A name spelled with escapes is the name it decodes to.
  EXPECT_EQ(CompactMemberText(R"({"meta\u0064ata":{"e":1}})", "metadata"), R"({"e":1})");
}

TEST(CompactMemberTextTest, NothingForAbsentMembersOrTextThatIsNotAnObject) {
  EXPECT_EQ(CompactMemberText("{}", "m"), std::nullopt);
  EXPECT_EQ(CompactMemberText("", "m"), std::nullopt);
  EXPECT_EQ(CompactMemberText("[1]", "m"), std::nullopt);
  EXPECT_EQ(CompactMemberText(R"({"m")", "m"), std::nullopt);
  EXPECT_EQ(CompactMemberText(R"({"m":)", "m"), std::nullopt);
}

TEST(FieldReaderTest, ObjectJsonKeepsNumbersAsWrittenGivenTheText) {
  const std::string text = R"({"metadata": {"ratio": 1.0, "n": 10}})";
  const boost::json::object body = boost::json::parse(text).as_object();
  auto kept = FieldReader(body, text).ObjectJson("metadata");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept.value().value(), R"({"ratio":1.0,"n":10})");
  // Without the text, the parsed value is serialized again (1.0 becomes 1E0).
  auto reserialized = FieldReader(body).ObjectJson("metadata");
  ASSERT_TRUE(reserialized.ok());
  EXPECT_EQ(reserialized.value().value(), R"({"ratio":1E0,"n":10})");
  // A text that is not the object's own is not taken: the parsed value is serialized.
  auto mismatched = FieldReader(body, R"({"metadata":{"other":2.0}})").ObjectJson("metadata");
  ASSERT_TRUE(mismatched.ok());
  EXPECT_EQ(mismatched.value().value(), R"({"ratio":1E0,"n":10})");
  // A value that is no object is refused naming the field, text or not.
  const std::string bad = R"({"metadata":[1]})";
  const boost::json::object bad_body = boost::json::parse(bad).as_object();
  auto refused = FieldReader(bad_body, bad).ObjectJson("metadata");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().param, "metadata");
}

}  // namespace
}  // namespace keygate::dialects
