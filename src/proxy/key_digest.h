// The SHA-256 digest of a bearer key, as keys::Sha256Hex computes it (lowercase hex), held
// inline so that every model call's authentication allocates nothing for it
// (keys::Sha256HexTo: OpenSSL's low-level SHA-256 on a context on the stack, not EVP, whose
// per-call lookup and allocation cost more than hashing a key).
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
