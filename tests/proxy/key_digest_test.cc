#include "proxy/key_digest.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "keys/secrets.h"

namespace keygate::proxy {
namespace {

TEST(KeyDigestTest, MatchesTheKeysRoomsDigest) {
  const std::string secrets[] = {"", "sk-kg-abc", std::string(1000, 'x'), std::string("a\0b", 3)};
  for (const std::string& secret : secrets) {
    EXPECT_EQ(KeyDigestHex(secret), keys::Sha256Hex(secret));
    EXPECT_EQ(DigestKey(secret).view(), keys::Sha256Hex(secret));  // the inline form
  }
  EXPECT_EQ(KeyDigestHex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(KeyDigestTest, EachThreadGetsTheSameAnswer) {
  std::string other;
  std::thread thread([&other] { other = KeyDigestHex("sk-kg-thread"); });
  thread.join();
  EXPECT_EQ(other, KeyDigestHex("sk-kg-thread"));
}

}  // namespace
}  // namespace keygate::proxy
