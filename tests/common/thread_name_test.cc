#include "common/thread_name.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <string>
#include <thread>

namespace keygate {
namespace {

std::string NameSeenAfter(std::string_view name) {
  std::string seen;
  std::thread([&] {
    NameThisThread(name);
    char buffer[32] = {};
    pthread_getname_np(pthread_self(), buffer, sizeof buffer);
    seen = buffer;
  }).join();
  return seen;
}

TEST(ThreadNameTest, NamesTheThreadAndCutsLongNames) {
  EXPECT_EQ(NameSeenAfter("kg-checkpoint"), "kg-checkpoint");
  EXPECT_EQ(NameSeenAfter("kg-io-with-a-very-long-name"), "kg-io-with-a-ve");
}

}  // namespace
}  // namespace keygate
