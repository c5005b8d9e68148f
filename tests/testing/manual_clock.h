// A Clock that only moves when told (Envoy's SimulatedTimeSystem, in miniature).
// Thread safety: safe from any thread.
#pragma once

#include <atomic>

#include "common/clock.h"

namespace keygate::testing {

class ManualClock final : public Clock {
 public:
  explicit ManualClock(UnixMillis start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  UnixMillis NowMs() const override { return now_ms_.load(); }
  int64_t MonotonicNs() const override { return mono_ns_.load(); }
  void AdvanceMs(int64_t ms) {
    now_ms_ += ms;
    mono_ns_ += ms * 1'000'000;
  }
  void SetMs(UnixMillis ms) { now_ms_ = ms; }

 private:
  std::atomic<UnixMillis> now_ms_;
  std::atomic<int64_t> mono_ns_{0};
};

}  // namespace keygate::testing
