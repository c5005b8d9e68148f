// ASCII-only helpers for protocol text (HTTP header names, model ids, numbers in headers):
// unlike <cctype> and streams, they ignore the locale and are inlined, which matters on the
// per-request path.
//
// Thread safety: pure functions.
#pragma once

#include <charconv>
#include <concepts>
#include <string>
#include <string_view>

namespace keygate {

// Without a branch (header names are lower-cased and compared on every request): an upper-case
// letter gets the 0x20 bit set.
constexpr char AsciiLower(char c) {
  const bool upper = static_cast<unsigned char>(c - 'A') < 26;
  return static_cast<char>(c | (static_cast<int>(upper) << 5));
}

constexpr bool IsAsciiAlnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// The value of the hexadecimal digit `c` (either case), or -1 if it is not one.
constexpr int AsciiHexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// `s` with A-Z mapped to a-z.
inline std::string AsciiLowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

// True if `a` and `b` are equal ignoring ASCII case.
constexpr bool AsciiIEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a == b) return true;  // the usual case (names already lower-cased), by memcmp
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

// Appends `value` in decimal to `out`: a std::string, or anything with its append(const char*,
// size_t) (a TextWriter, common/text_writer.h).
template <typename Out>
inline void AppendDecimal(std::integral auto value, Out* out) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out->append(digits, static_cast<size_t>(end - digits));
}

}  // namespace keygate
