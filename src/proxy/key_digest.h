// The SHA-256 digest of a bearer key, as keys::Sha256Hex computes it (lowercase hex), made
// cheap enough for every model call: OpenSSL 3's EVP interface (and its one-shot SHA256())
// looks the algorithm up and allocates a context on each call, which costs more than hashing
// a key; here the low-level SHA-256 runs on a context on the stack.
//
// Thread safety: safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace keygate::proxy {

// The lowercase hex SHA-256 of a secret, held inline (no allocation).
struct KeyDigest {
  char hex[64];
  std::string_view view() const { return {hex, sizeof hex}; }
};

// Returns the lowercase hex SHA-256 of `secret`: the same text as keys::Sha256Hex(secret).
KeyDigest DigestKey(std::string_view secret);
// The same, as a string.
std::string KeyDigestHex(std::string_view secret);

}  // namespace keygate::proxy
