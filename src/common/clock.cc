#include "common/clock.h"

#include <chrono>

namespace keygate {

// The only place in the tree that reads the wall clock (checked by scripts/lint.sh).
UnixMillis SystemClock::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SystemClock::MonotonicNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace keygate
