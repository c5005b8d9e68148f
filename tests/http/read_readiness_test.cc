// http/read_readiness: a short read marks a socket drained only when that is true, and a
// drained socket's next read still completes, with data or with the peer's end of stream.
#include "http/read_readiness.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace keygate::http {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

constexpr size_t kReadBytes = 4096;

// A connected loopback pair: `reader` lives on the test's io_context (run by this thread
// only, as the hints require); `peer` is written to synchronously.
class ReadReadinessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!ReadReadinessHintsSupported()) GTEST_SKIP() << "hints are no-ops with this Asio";
    tcp::acceptor acceptor(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    peer_.connect(acceptor.local_endpoint());
    acceptor.accept(reader_);
    reader_.non_blocking(true);
  }

  struct Completion {
    error_code ec;
    std::string data;
  };

  // Starts one read; its result lands in `done_`, then `on_done_` (if set) runs, once, inside
  // the read's handler.
  void StartRead() {
    done_.reset();
    reader_.async_read_some(net::buffer(buffer_), [this](const error_code& ec, size_t bytes) {
      done_ = Completion{ec, std::string(buffer_, bytes)};
      std::function<void()> then = std::exchange(on_done_, nullptr);
      if (then) then();
    });
  }

  // Runs the io_context until no read is pending (the last one's result is in `done_`), or
  // gives up after `limit`.
  bool RunUntilDone(std::chrono::milliseconds limit = std::chrono::milliseconds(2000)) {
    const auto give_up = std::chrono::steady_clock::now() + limit;
    while (!done_ && std::chrono::steady_clock::now() < give_up) {
      io_.restart();
      io_.run_for(std::chrono::milliseconds(20));
    }
    return done_.has_value();
  }

  void PeerSends(const std::string& text) { net::write(peer_, net::buffer(text)); }

  net::io_context io_{1};
  tcp::socket reader_{io_};
  tcp::socket peer_{io_};
  char buffer_[kReadBytes];
  std::optional<Completion> done_;
  std::function<void()> on_done_;
};

TEST_F(ReadReadinessTest, AReadAfterAShortOneWaitsForTheNextEventAndStillGetsItsBytes) {
  ASSERT_TRUE(WatchPeerHangup(reader_));
  StartRead();
  ASSERT_TRUE(ReadWasQueued(reader_));  // nothing to read yet
  bool second_was_queued = false;
  on_done_ = [&] {
    ASSERT_FALSE(done_->ec);
    ASSERT_EQ(done_->data, "first");
    NoteDrained(reader_);
    // Bytes that arrive after the short read raise a new event: the next read is not tried
    // at once (it is queued although its bytes are already there) and still completes.
    PeerSends("second");
    StartRead();
    second_was_queued = ReadWasQueued(reader_);
  };
  PeerSends("first");
  ASSERT_TRUE(RunUntilDone());  // both reads
  EXPECT_TRUE(second_was_queued);
  EXPECT_FALSE(done_->ec);
  EXPECT_EQ(done_->data, "second");
}

TEST_F(ReadReadinessTest, WithoutTheHangupWatchAShortReadChangesNothing) {
  StartRead();
  ASSERT_TRUE(ReadWasQueued(reader_));
  bool second_was_queued = true;
  on_done_ = [&] {
    NoteDrained(reader_);  // no EPOLLRDHUP registered: ignored
    PeerSends("second");
    StartRead();
    second_was_queued = ReadWasQueued(reader_);  // tried at once, and it found the bytes
  };
  PeerSends("first");
  ASSERT_TRUE(RunUntilDone());  // both reads
  EXPECT_FALSE(second_was_queued);
  EXPECT_EQ(done_->data, "second");
}

TEST_F(ReadReadinessTest, BytesAndTheEndOfStreamInOneEventDoNotMarkTheSocketDrained) {
  ASSERT_TRUE(WatchPeerHangup(reader_));
  StartRead();
  ASSERT_TRUE(ReadWasQueued(reader_));
  // Both arrive before the reactor looks: one event, the FIN behind the bytes. Marked drained,
  // the socket would never report its end of stream again.
  PeerSends("last words");
  peer_.shutdown(tcp::socket::shutdown_send);
  on_done_ = [&] {
    ASSERT_FALSE(done_->ec);
    ASSERT_EQ(done_->data, "last words");
    NoteDrained(reader_);
    StartRead();
  };
  ASSERT_TRUE(RunUntilDone()) << "the end of stream was lost";
  EXPECT_EQ(done_->ec, net::error::eof);
}

TEST_F(ReadReadinessTest, AnEndOfStreamAfterTheShortReadEndsTheWaitingRead) {
  ASSERT_TRUE(WatchPeerHangup(reader_));
  StartRead();
  on_done_ = [&] {
    NoteDrained(reader_);
    StartRead();
    peer_.shutdown(tcp::socket::shutdown_send);  // a new event, after the short read
  };
  PeerSends("bytes");
  ASSERT_TRUE(RunUntilDone()) << "the end of stream was lost";
  EXPECT_EQ(done_->ec, net::error::eof);
}

}  // namespace
}  // namespace keygate::http
