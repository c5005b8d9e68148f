// ASCII-only helpers for protocol text (HTTP header names, model ids, numbers in headers):
// unlike <cctype> and streams, they ignore the locale and are inlined, which matters on the
// per-request path.
//
// Thread safety: pure functions.
#pragma once

#include <charconv>
#include <concepts>
#include <cstdint>
#include <cstring>
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

// `s` without the optional whitespace of HTTP (RFC 9110 §5.6.3: spaces and tabs) around it.
constexpr std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls `f` with each element of the comma-separated list `list` (RFC 9110 §5.6.1: the optional
// spaces and tabs around an element trimmed, empty elements skipped) until `f` returns true;
// returns whether it did.
template <class F>
bool AnyListElement(std::string_view list, F f) {
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view element = TrimOws(list.substr(0, comma));
    if (!element.empty() && f(element)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

// The value of the hexadecimal digit `c` (either case), or -1 if it is not one.
constexpr int AsciiHexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Maps A-Z to a-z in the `n` bytes at `p`, eight at a time: in each word, the bytes from 'A'
// to 'Z' (below 0x80, at least 0x41, below 0x5B: two additions on the low seven bits, which
// cannot carry into the next byte) get the 0x20 bit set.
inline void AsciiLowerInPlace(char* p, size_t n) {
  constexpr uint64_t kLow7 = 0x7F7F7F7F7F7F7F7FULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  size_t i = 0;
  for (; i + sizeof(uint64_t) <= n; i += sizeof(uint64_t)) {
    uint64_t w;
    std::memcpy(&w, p + i, sizeof w);
    const uint64_t low = w & kLow7;
    const uint64_t at_least_a = low + 0x3F3F3F3F3F3F3F3FULL;  // 0x80 - 'A'
    const uint64_t past_z = low + 0x2525252525252525ULL;      // 0x80 - ('Z' + 1)
    const uint64_t upper = at_least_a & ~past_z & ~w & kHighs;
    w |= upper >> 2;
    std::memcpy(p + i, &w, sizeof w);
  }
  for (; i < n; ++i) p[i] = AsciiLower(p[i]);
}

// `s` with A-Z mapped to a-z.
inline std::string AsciiLowered(std::string_view s) {
  std::string out(s);
  AsciiLowerInPlace(out.data(), out.size());
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

// True if `text` equals `lower` ignoring ASCII case, where `text` holds bytes of an HTTP field
// name or value (visible ASCII, space, tab) and `lower` only lower-case letters, digits and
// '-'. Setting the 0x20 bit of such bytes folds exactly the capitals onto the letters (and
// maps no other byte onto a letter, a digit or '-'), so the comparison runs eight bytes at a
// time, without a branch per byte: for the framing fields every head is checked against.
inline bool FieldIEquals(std::string_view text, std::string_view lower) {
  const size_t n = text.size();
  if (n != lower.size()) return false;
  const char* a = text.data();
  const char* b = lower.data();
  auto load64 = [](const char* p) {
    uint64_t w;
    std::memcpy(&w, p, sizeof w);
    return w;
  };
  auto load32 = [](const char* p) {
    uint32_t w;
    std::memcpy(&w, p, sizeof w);
    return w;
  };
  constexpr uint64_t kFold64 = 0x2020202020202020ULL;
  constexpr uint32_t kFold32 = 0x20202020U;
  if (n >= 8) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
      if ((load64(a + i) | kFold64) != load64(b + i)) return false;
    }
    return (load64(a + n - 8) | kFold64) == load64(b + n - 8);  // the last, overlapping word
  }
  if (n >= 4) {
    return (load32(a) | kFold32) == load32(b) &&
           (load32(a + n - 4) | kFold32) == load32(b + n - 4);
  }
  for (size_t i = 0; i < n; ++i) {
    if ((a[i] | 0x20) != b[i]) return false;
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
