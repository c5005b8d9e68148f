// Well-formed UTF-8, by RFC 3629: what the JSON scanner accepts and what the JSON writer lets
// through unescaped.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string_view>

namespace keygate {

// The length (2 to 4) of the multi-byte UTF-8 sequence `s` begins with (no overlong form, no
// surrogate, nothing above U+10FFFF), or 0 if it begins none. REQUIRES: s is not empty.
inline size_t Utf8SequenceLength(std::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned lead = byte(0);
  size_t length = 0;
  unsigned low = 0x80;  // the range of the second byte, narrowed where the lead requires
  unsigned high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

}  // namespace keygate
