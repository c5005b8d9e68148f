// The shape of a keygate secret's random part, known beside keys/secrets.cc (which makes it)
// to the code that masks secrets in text it did not make (paths, error answers, request ids):
// a key issued under a prefix no longer configured is still a key.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace keygate {

// Base-62 digits after a secret's prefix: 32 random bytes, ceil(256 / log2(62)).
inline constexpr size_t kSecretBodyChars = 43;
// The longest key prefix a configuration may set (config/settings.cc).
inline constexpr size_t kMaxKeyPrefixChars = 16;

// True if `text` holds a run of kSecretBodyChars letters and digits, with no letter or digit
// on either side, or of up to kMaxKeyPrefixChars more (a prefix that ends in a letter or a
// digit runs into the secret): the random part of a key, whatever its prefix.
bool HoldsSecretShape(std::string_view text);

// Masks, in place, every such run's last kSecretBodyChars characters as keys are masked
// everywhere ("••••" and the last four). `json`: `text` is JSON, whose escapes are left whole
// (the letter and hex digits of a "\uXXXX" or the letter of "\n" never count toward a run).
void MaskSecretShapes(std::string* text, bool json);

}  // namespace keygate
