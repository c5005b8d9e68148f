#include "common/lazy_timer.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <vector>

namespace keygate {
namespace {

using namespace std::chrono_literals;
using Clock = LazyTimer::Clock;

class LazyTimerTest : public ::testing::Test {
 protected:
  // Asks for a wait ending by `at`; each end is recorded (and acknowledged) as it comes.
  void FireBy(Clock::time_point at) {
    timer_.FireBy(at, [this](Clock::time_point expiry) {
      timer_.Fired(expiry);
      fired_.push_back(expiry);
    });
  }

  boost::asio::io_context io_{1};
  LazyTimer timer_{io_};
  std::vector<Clock::time_point> fired_;
};

TEST_F(LazyTimerTest, ALaterDeadlineKeepsThePendingWait) {
  const Clock::time_point start = Clock::now();
  FireBy(start + 20ms);
  FireBy(start + 10s);  // later: the pending wait stays, the owner asks again when it ends
  io_.run_for(2s);
  EXPECT_EQ(fired_, std::vector<Clock::time_point>{start + 20ms});
}

TEST_F(LazyTimerTest, AnEarlierDeadlineReplacesThePendingWait) {
  const Clock::time_point start = Clock::now();
  FireBy(start + 10s);
  FireBy(start + 20ms);
  io_.run_for(300ms);
  EXPECT_EQ(fired_, std::vector<Clock::time_point>{start + 20ms});
}

TEST_F(LazyTimerTest, AfterAWaitEndsTheNextDeadlineArmsAgain) {
  const Clock::time_point start = Clock::now();
  FireBy(start + 10ms);
  io_.run_for(300ms);
  io_.restart();
  FireBy(start + 30ms);  // already past: the wait ends at once
  FireBy(Clock::time_point::max());  // no deadline: nothing to arm
  io_.run_for(300ms);
  EXPECT_EQ(fired_, (std::vector<Clock::time_point>{start + 10ms, start + 30ms}));
}

TEST_F(LazyTimerTest, CancelledWaitsNeverFireAndTheNextDeadlineArmsAgain) {
  const Clock::time_point start = Clock::now();
  FireBy(start + 20ms);
  timer_.Cancel();
  io_.run_for(200ms);
  EXPECT_TRUE(fired_.empty());
  io_.restart();
  FireBy(start + 40ms);
  io_.run_for(300ms);
  EXPECT_EQ(fired_, std::vector<Clock::time_point>{start + 40ms});
}

}  // namespace
}  // namespace keygate
