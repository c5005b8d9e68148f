// The promise of spec §3 under concurrency, through the real binary: 200 calls at once against
// a budget that holds a handful, and against an RPM limit; spend never passes the limit, no
// window holds more than its limit, and the upstream saw exactly the admitted calls.
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "integration/data_plane_fixture.h"

namespace keygate::testing {
namespace {

constexpr int kCalls = 200;

// Statuses of kCalls concurrent calls of `body` with `secret`, all released at once.
std::vector<int> CallConcurrently(DataPlaneTest* test, uint16_t port, const std::string& secret,
                                  const std::string& body) {
  std::vector<int> statuses(kCalls, 0);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  threads.reserve(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      TestHttpClient client("127.0.0.1", port);
      TestHttpClient::HeaderList headers = {{"Authorization", "Bearer " + secret},
                                            {"Content-Type", "application/json"}};
      ++ready;
      while (!go.load()) std::this_thread::yield();
      try {
        statuses[i] = client.Request("POST", "/v1/chat/completions", body, headers).status;
      } catch (const std::exception&) {
        statuses[i] = -1;
      }
    });
  }
  while (ready.load() < kCalls) std::this_thread::yield();
  go = true;
  for (std::thread& thread : threads) thread.join();
  return statuses;
}

int Count(const std::vector<int>& statuses, int status) {
  int n = 0;
  for (int s : statuses) n += s == status;
  return n;
}

TEST_F(DataPlaneTest, TwoHundredConcurrentCallsNeverPassTheCreditLimit) {
  // A 400-byte prompt: reserved 400 + 4 + 4 + 8 + 2 * 5 = 426 micro-dollars each; charged
  // ceil(400 / 4) + 3 + 2 * 2 = 107. A $0.001 limit holds two reservations at a time and at
  // most nine calls in all.
  MintedKey key = Mint(R"("credit_limit": 0.001)");
  const std::string body = ChatBody(std::string(400, 'a'), 5);
  const std::vector<int> statuses = CallConcurrently(this, process_->port(), key.secret, body);
  const int admitted = Count(statuses, 200);
  EXPECT_EQ(admitted + Count(statuses, 402), kCalls) << "only 200 and 402 are expected";
  EXPECT_GE(admitted, 2);
  EXPECT_LE(admitted, 9);
  // The upstream saw exactly the admitted calls.
  EXPECT_EQ(MockChats(), admitted);
  auto rows = WaitForUsage(key.hash, static_cast<size_t>(admitted));
  ASSERT_EQ(rows.size(), static_cast<size_t>(admitted));
  EXPECT_LE(SumCost(rows), 1000);
  EXPECT_EQ(SumCost(rows), admitted * 107);
  EXPECT_EQ(UsageTotalMicros(key), SumCost(rows));
}

TEST_F(DataPlaneTest, TwoHundredConcurrentCallsNeverPassTheRpmLimit) {
  MintedKey key = Mint(R"("rpm_limit": 7)");
  const std::vector<int> statuses =
      CallConcurrently(this, process_->port(), key.secret, ChatBody("hi", 5));
  EXPECT_EQ(Count(statuses, 200), 7);
  EXPECT_EQ(Count(statuses, 429), kCalls - 7);
  EXPECT_EQ(MockChats(), 7);
}

TEST_F(DataPlaneTest, TwoHundredConcurrentCallsNeverPassTheTpmLimit) {
  // 18 + 50 = 68 tokens reserved per call, 6 charged: a 700-token window.
  MintedKey key = Mint(R"("tpm_limit": 700)");
  const std::vector<int> statuses =
      CallConcurrently(this, process_->port(), key.secret, ChatBody("hi", 50));
  const int admitted = Count(statuses, 200);
  EXPECT_EQ(admitted + Count(statuses, 429), kCalls);
  EXPECT_GE(admitted, 10);
  // Settled calls count 6 tokens each; at most 700 / 6 fit in the minute.
  EXPECT_LE(admitted * 6, 700);
  EXPECT_EQ(MockChats(), admitted);
}

}  // namespace
}  // namespace keygate::testing
