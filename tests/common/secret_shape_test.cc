// Secret-shaped runs (common/secret_shape.h): a key's random part, whatever its prefix.
#include "common/secret_shape.h"

#include <gtest/gtest.h>

#include <string>

namespace keygate {
namespace {

const std::string kBody = "0123456789abcdefghijABCDEFGHIJklmnopqrstWXY";  // 43 characters

TEST(SecretShapeTest, ARunOfTheSecretsLengthOrAPrefixMoreIsOne) {
  ASSERT_EQ(kBody.size(), kSecretBodyChars);
  EXPECT_TRUE(HoldsSecretShape(kBody));
  EXPECT_TRUE(HoldsSecretShape("sk-old-" + kBody));
  EXPECT_TRUE(HoldsSecretShape("trace." + kBody + ".x"));
  EXPECT_TRUE(HoldsSecretShape("sk" + kBody));  // a prefix ending in a letter runs into it
  EXPECT_TRUE(HoldsSecretShape(std::string(16, 'p') + kBody));
  EXPECT_FALSE(HoldsSecretShape(std::string(17, 'p') + kBody));  // longer than any key
  EXPECT_FALSE(HoldsSecretShape(kBody.substr(1)));       // 42
  EXPECT_FALSE(HoldsSecretShape(std::string(64, 'f')));  // a key's hash
  EXPECT_FALSE(HoldsSecretShape("req_0123456789a"));
}

TEST(SecretShapeTest, EveryRunIsMaskedKeepingItsLastFour) {
  std::string text = "/api/v1/keys/sk-old-" + kBody + "/x/" + kBody;
  MaskSecretShapes(&text, false);
  const std::string masked = "\u2022\u2022\u2022\u2022" + kBody.substr(39);
  EXPECT_EQ(text, "/api/v1/keys/sk-old-" + masked + "/x/" + masked);
  std::string hash(64, 'a');
  MaskSecretShapes(&hash, false);
  EXPECT_EQ(hash, std::string(64, 'a'));
  std::string run_on = "/keys/kg1" + kBody;  // prefix "kg1": the last 43 are the secret
  MaskSecretShapes(&run_on, false);
  EXPECT_EQ(run_on, "/keys/kg1" + masked);
}

TEST(SecretShapeTest, JsonEscapesStayWhole) {
  // "\u00e9" then 42 characters: with the escape's letter and digits the run would be 47, and
  // without them it is 42, not a secret; "\n" then 43 is one, and the escape stays.
  std::string accented = R"({"m":"\u00e9)" + kBody.substr(1) + R"("})";
  MaskSecretShapes(&accented, true);
  EXPECT_EQ(accented, R"({"m":"\u00e9)" + kBody.substr(1) + R"("})");
  // After an escaped backslash ("\\"), the run is the secret's whole.
  std::string after_backslash = R"({"m":"C:\\)" + kBody + R"("})";
  MaskSecretShapes(&after_backslash, true);
  EXPECT_EQ(after_backslash.find(kBody), std::string::npos) << after_backslash;
  std::string after_newline = R"({"m":"\n)" + kBody + R"("})";
  MaskSecretShapes(&after_newline, true);
  EXPECT_EQ(after_newline, R"({"m":"\n)" + std::string("\u2022\u2022\u2022\u2022") +
                               kBody.substr(39) + R"("})");
}

}  // namespace
}  // namespace keygate
