#include "proxy/key_digest.h"

// OpenSSL's low-level SHA-256 (SHA256_Init/Update/Final): deprecated in OpenSSL 3 in favour
// of EVP, whose per-call set-up (a provider lookup, two allocations) costs several times the
// hash of a 50-byte key; even the one-shot SHA256() goes through it now. Same algorithm, same
// assembly.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "common/hex.h"

namespace keygate::proxy {

KeyDigest DigestKey(std::string_view secret) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256_CTX context;
  SHA256_Init(&context);
  SHA256_Update(&context, secret.data(), secret.size());
  SHA256_Final(digest, &context);
  KeyDigest out;
  static_assert(sizeof out.hex == 2 * SHA256_DIGEST_LENGTH);
  HexEncode(digest, SHA256_DIGEST_LENGTH, out.hex);
  return out;
}

std::string KeyDigestHex(std::string_view secret) { return std::string(DigestKey(secret).view()); }

}  // namespace keygate::proxy
