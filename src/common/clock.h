// Injected time (after Envoy's TimeSource). Everything that reasons about budget periods,
// expiry, grace periods and rolling windows asks a Clock for system time; monotonic time is
// for local durations only. SystemClock is the production implementation; tests use
// tests/testing/manual_clock.h.
//
// Thread safety: implementations must be safe to call from any thread.
#pragma once

#include <cstdint>

namespace keygate {

// Milliseconds since the Unix epoch, UTC.
using UnixMillis = int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  // Current UTC wall time in milliseconds since the epoch.
  virtual UnixMillis NowMs() const = 0;
  // Monotonic nanoseconds from an arbitrary origin; for durations only.
  virtual int64_t MonotonicNs() const = 0;
};

class SystemClock final : public Clock {
 public:
  UnixMillis NowMs() const override;
  int64_t MonotonicNs() const override;
};

}  // namespace keygate
