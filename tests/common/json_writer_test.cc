#include "common/json_writer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace keygate {
namespace {

TEST(JsonWriterTest, HandlesCommasNestingAndEscapes) {
  JsonWriter w;
  w.BeginObject().Key("a").Int(1).Key("b").BeginArray().String("x\"y").Null().EndArray();
  w.Key("c").BeginObject().EndObject().Key("d").Usd(1'500'000).Key("e").Bool(false).EndObject();
  EXPECT_EQ(w.str(), R"({"a":1,"b":["x\"y",null],"c":{},"d":1.5,"e":false})");
}

// Plain runs are copied whole and each character that needs it is escaped in place, at the
// start, between runs and at the end of a string; bytes >= 0x80 (UTF-8) pass through.
TEST(JsonWriterTest, EscapesEveryCharacterJsonRequiresAndKeepsTheRest) {
  JsonWriter w;
  w.BeginArray().String(std::string("\"a\\b\nc\rd\te\x01\x1f") + '\0' + "caf\xc3\xa9\"");
  w.String("").String("plain text").EndArray();
  EXPECT_EQ(w.str(), R"(["\"a\\b\nc\rd\te\u0001\u001f\u0000caf)"
                     "\xc3\xa9"
                     R"(\"","","plain text"])");
}

TEST(JsonWriterTest, WritesIntegersAtTheirLimits) {
  JsonWriter w;
  w.BeginArray().Int(0).Int(-7).Int(INT64_MAX).Int(INT64_MIN).EndArray();
  EXPECT_EQ(w.str(), "[0,-7,9223372036854775807,-9223372036854775808]");
}

TEST(JsonWriterTest, NullHelpersWriteNullForAbsentValues) {
  JsonWriter w;
  w.BeginObject().Key("s").StringOrNull("").Key("i").IntOrNull(std::nullopt);
  w.Key("m").UsdOrNull(std::nullopt).Key("r").RawOrNull("").EndObject();
  EXPECT_EQ(w.str(), R"({"s":null,"i":null,"m":null,"r":null})");
}

}  // namespace
}  // namespace keygate
