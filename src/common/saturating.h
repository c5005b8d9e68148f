// Sums of counts and money that must never wrap: a wrapped total turns a key's spend or its
// tokens of the minute negative, and a negative total admits everything (audit Z). Past the
// int64 range a sum stays at its end, which can only make a limit look fuller.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <limits>

namespace keygate {

inline int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) {
    return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
  }
  return sum;
}

}  // namespace keygate
