#include "keys/secrets.h"

#include <gtest/gtest.h>

#include <set>

#include "common/secret_source.h"

namespace keygate::keys {
namespace {

TEST(SecretsTest, SecretsHavePrefixFixedLengthAndBase62Body) {
  OsSecretSource source;
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    std::string s = GenerateSecret("sk-kg-", source);
    ASSERT_EQ(s.rfind("sk-kg-", 0), 0u);
    ASSERT_EQ(s.size(), 6u + 43u);
    for (char c : s.substr(6)) ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << s;
    seen.insert(s);
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST(SecretsTest, DigestIsLowercaseHexSha256) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(SecretsTest, ConstantTimeEqualsComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abcd", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("abcd", "abce"));
  EXPECT_FALSE(ConstantTimeEquals("abcd", "abc"));
  // Every length across the eight-byte words and the tail, a difference at every position
  // and in any one bit.
  for (size_t length = 0; length <= 40; ++length) {
    std::string a(length, 'k');
    for (size_t i = 0; i < length; ++i) a[i] = static_cast<char>('0' + i % 64);
    EXPECT_TRUE(ConstantTimeEquals(a, std::string(a))) << length;
    for (size_t at = 0; at < length; ++at) {
      std::string b = a;
      b[at] = static_cast<char>(b[at] ^ (1 << (at % 8)));
      EXPECT_FALSE(ConstantTimeEquals(a, b)) << length << " " << at;
    }
  }
}

TEST(SecretsTest, MaskShowsOnlyPrefixAndLastFour) {
  EXPECT_EQ(MaskSecret("sk-kg-", "sk-kg-0123456789abcdefa91c"), "sk-kg-••••a91c");
  EXPECT_EQ(MaskSecret("sk-kg-", "sk-kg-abc"), "sk-kg-••••");
}

class CountingSource final : public SecretSource {
 public:
  void Fill(uint8_t* out, size_t n) override {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(next_++);
  }

 private:
  uint8_t next_ = 0;
};

class FixedSource final : public SecretSource {
 public:
  explicit FixedSource(uint8_t byte) : byte_(byte) {}
  void Fill(uint8_t* out, size_t n) override {
    for (size_t i = 0; i < n; ++i) out[i] = byte_;
  }

 private:
  uint8_t byte_;
};

// The body is the 32 random bytes as one big-endian number in base 62 (0-9, A-Z, a-z),
// 43 digits with leading zeros (values computed independently, with Python's integers).
TEST(SecretsTest, BodyIsTheBytesInBase62) {
  CountingSource counting;  // bytes 0, 1, ..., 31
  EXPECT_EQ(GenerateSecret("sk-", counting), "sk-003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf");
  FixedSource ones(0xff);
  EXPECT_EQ(GenerateSecret("sk-", ones), "sk-yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1");
  FixedSource zeros(0);
  EXPECT_EQ(GenerateSecret("sk-", zeros), "sk-" + std::string(43, '0'));
}

TEST(SecretsTest, SecretsComeFromTheInjectedSource) {
  CountingSource a, b;
  EXPECT_EQ(GenerateSecret("pk-", a), GenerateSecret("pk-", b));
  EXPECT_EQ(RandomId("org_", a).size(), 4u + 16u);
}

}  // namespace
}  // namespace keygate::keys
