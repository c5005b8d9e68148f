// Lower-case hexadecimal text of bytes, a table lookup per byte (a key's SHA-256 digest is
// written out as hex on every model call's authentication).
//
// Thread safety: pure functions over constant data.
#pragma once

#include <array>
#include <cstddef>
#include <cstring>

namespace keygate {

namespace hex_internal {
// The two characters of every byte value, in order: "000102...feff".
constexpr std::array<char, 512> MakePairs() {
  constexpr char kDigits[] = "0123456789abcdef";
  std::array<char, 512> pairs{};
  for (size_t byte = 0; byte < 256; ++byte) {
    pairs[2 * byte] = kDigits[byte >> 4];
    pairs[2 * byte + 1] = kDigits[byte & 0x0F];
  }
  return pairs;
}
inline constexpr std::array<char, 512> kPairs = MakePairs();
}  // namespace hex_internal

// Writes the 2 * size hex characters of data[0, size) to out. REQUIRES: out has room for them.
inline void HexEncode(const unsigned char* data, size_t size, char* out) {
  for (size_t i = 0; i < size; ++i) {
    std::memcpy(out + 2 * i, &hex_internal::kPairs[2 * size_t{data[i]}], 2);  // one 2-byte copy
  }
}

}  // namespace keygate
