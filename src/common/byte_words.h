// Scanning text eight bytes at a time (SWAR: SIMD within a register), for the hand-written
// scanners of the hot path (HTTP heads, JSON strings): a word is loaded, a mask marks the bytes
// to stop at, and the scan moves on by eight while none is marked. Where the compiler targets
// SSE2 (every x86-64), sixteen at a time first: SkipUnmarkedBlocks(), whose masks are exact (a
// bit for each byte to stop at, no borrow); elsewhere it is a no-op and the words do the work.
// A scanner calls the blocks, and when they did not stop at a byte, the words, then goes on
// byte by byte.
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

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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

#if defined(__SSE2__)
using Block = __m128i;
inline constexpr size_t kBlock = sizeof(Block);

// A bit (as _mm_movemask_epi8 sets them, bit i for byte i) for each byte of `b` equal to `c`.
inline unsigned EqualMask(Block b, char c) {
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_set1_epi8(c))));
}

// A bit for each byte of `b` below `c` (c at most 0x7F) or at 0x80 and above: one signed
// comparison, which reads the high bytes as negative.
inline unsigned BelowOrHighMask(Block b, char c) {
  return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmplt_epi8(b, _mm_set1_epi8(c))));
}

// Moves *p to the first byte in a block of sixteen that `marks(block)` marks and returns true;
// or, finding none, to the first of the last bytes that do not fill a block, and returns false.
template <typename Marks>
inline bool SkipUnmarkedBlocks(const char** p, const char* end, Marks marks) {
  const char* at = *p;
  while (static_cast<size_t>(end - at) >= kBlock) {
    const unsigned marked = marks(_mm_loadu_si128(reinterpret_cast<const Block*>(at)));
    if (marked != 0) {
      *p = at + std::countr_zero(marked);
      return true;
    }
    at += kBlock;
  }
  *p = at;
  return false;
}
#else
struct Block {};
inline constexpr size_t kBlock = 0;
inline unsigned EqualMask(Block, char) { return 0; }
inline unsigned BelowOrHighMask(Block, char) { return 0; }
template <typename Marks>
inline bool SkipUnmarkedBlocks(const char**, const char*, Marks) {
  return false;
}
#endif

}  // namespace keygate::byte_words
