// Scanning text eight bytes at a time (SWAR: SIMD within a register), for the hand-written
// scanners of the hot path (HTTP heads, JSON strings): a word is loaded, a mask marks the bytes
// to stop at, and the scan moves on by eight while none is marked.
//
// The masks come from zero-byte tests, which can mark a byte above a marked one by their
// borrow, never one below: the lowest mark is always a true one, which is all a scan needs.
//
// Thread safety: pure functions.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace keygate::byte_words {

inline constexpr uint64_t kOnes = 0x0101010101010101ULL;
inline constexpr uint64_t kHighs = 0x8080808080808080ULL;
inline constexpr size_t kWord = sizeof(uint64_t);
static_assert(std::endian::native == std::endian::little);

// The high bit of each byte of `w` equal to `c`.
constexpr uint64_t Equal(uint64_t w, unsigned char c) {
  const uint64_t x = w ^ (kOnes * c);
  return (x - kOnes) & ~x & kHighs;
}

// The high bit of each byte of `w` below `c` (c at most 0x80).
constexpr uint64_t Below(uint64_t w, unsigned char c) { return (w - kOnes * c) & ~w & kHighs; }

// The high bit of each byte of `w` at 0x80 or above.
constexpr uint64_t High(uint64_t w) { return w & kHighs; }

// The first byte from `p` in a word that `marks(word)` marks, or the first of the last bytes
// that do not fill a word: the caller goes on byte by byte from there.
template <typename Marks>
inline const char* SkipUnmarked(const char* p, const char* end, Marks marks) {
  while (static_cast<size_t>(end - p) >= kWord) {
    uint64_t w = 0;
    std::memcpy(&w, p, kWord);
    const uint64_t marked = marks(w);
    if (marked != 0) return p + std::countr_zero(marked) / 8;
    p += kWord;
  }
  return p;
}

}  // namespace keygate::byte_words
