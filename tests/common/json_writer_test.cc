#include "common/json_writer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "common/log.h"

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

// Audit Q: a path's %ff, decoded, went raw into JSON answers and log lines, which a strict
// parser then refused whole. Every valid sequence passes; each byte of an invalid one is U+FFFD.
TEST(JsonWriterTest, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  const std::string valid = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf";
  std::string out;
  AppendJsonString(&out, "a" + valid + "b");
  EXPECT_EQ(out, "\"a" + valid + "b\"");
  for (const std::string bad : {
           "\xff", "\x80", "\xc0\x80", "\xc1\xbf",  // a stray continuation, overlong forms
           "\xe0\x80\x80", "\xed\xa0\x80",           // overlong, a surrogate
           "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",  // overlong, too high
           "\xc3", "\xe2\x82"}) {                      // cut short
    out.clear();
    AppendJsonString(&out, "/x" + bad + "y");
    std::string expected = "\"/x";
    for (size_t i = 0; i < bad.size(); ++i) expected += "\\ufffd";
    EXPECT_EQ(out, expected + "y\"") << out;
  }
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
