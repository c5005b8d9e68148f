// LazyTimer: one Asio steady_timer behind deadlines that move often (a connection's read and
// write deadlines, an upstream response timeout restarted by every read). Moving a deadline
// later costs nothing: the timer is re-armed only when a deadline comes before the pending
// wait's expiry. When a wait ends early (its deadline has moved on), the owner simply asks
// again. Includes Asio: for .cc files and private headers only.
//
// Thread safety: none; used on the one thread that runs its io_context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <utility>

namespace keygate {

class LazyTimer {
 public:
  using Clock = std::chrono::steady_clock;

  explicit LazyTimer(boost::asio::io_context& io) : timer_(io) {}

  // Makes sure a wait ends no later than `at` (nothing for Clock::time_point::max()). When it
  // ends, on_fire(expiry) runs; it must call Fired(expiry) first, through an owner it keeps
  // alive or checks (the handler may run after the owner let go of the timer). A wait
  // replaced by an earlier one or cancelled never calls on_fire.
  template <class OnFire>
  void FireBy(Clock::time_point at, OnFire on_fire) {
    if (at == Clock::time_point::max() || (pending_ && expiry_ <= at)) return;
    expiry_ = at;
    pending_ = true;
    timer_.expires_at(at);  // cancels a later wait, whose handler then sees an error
    timer_.async_wait([on_fire = std::move(on_fire), at](const boost::system::error_code& ec) {
      if (!ec) on_fire(at);
    });
  }

  // The wait that was to end at `expiry` has ended.
  void Fired(Clock::time_point expiry) {
    if (pending_ && expiry_ == expiry) pending_ = false;
  }

  void Cancel() {
    pending_ = false;
    timer_.cancel();
  }

 private:
  boost::asio::steady_timer timer_;
  Clock::time_point expiry_ = Clock::time_point::max();  // of the pending wait, if any
  bool pending_ = false;
};

}  // namespace keygate
