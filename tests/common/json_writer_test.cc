#include "common/json_writer.h"

#include <gtest/gtest.h>

namespace keygate {
namespace {

TEST(JsonWriterTest, HandlesCommasNestingAndEscapes) {
  JsonWriter w;
  w.BeginObject().Key("a").Int(1).Key("b").BeginArray().String("x\"y").Null().EndArray();
  w.Key("c").BeginObject().EndObject().Key("d").Usd(1'500'000).Key("e").Bool(false).EndObject();
  EXPECT_EQ(w.str(), R"({"a":1,"b":["x\"y",null],"c":{},"d":1.5,"e":false})");
}

TEST(JsonWriterTest, NullHelpersWriteNullForAbsentValues) {
  JsonWriter w;
  w.BeginObject().Key("s").StringOrNull("").Key("i").IntOrNull(std::nullopt);
  w.Key("m").UsdOrNull(std::nullopt).Key("r").RawOrNull("").EndObject();
  EXPECT_EQ(w.str(), R"({"s":null,"i":null,"m":null,"r":null})");
}

}  // namespace
}  // namespace keygate
