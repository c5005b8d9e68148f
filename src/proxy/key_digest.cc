#include "proxy/key_digest.h"

#include "keys/secrets.h"

namespace keygate::proxy {

KeyDigest DigestKey(std::string_view secret) {
  KeyDigest out;
  static_assert(sizeof out.hex == keys::kSha256HexSize);
  keys::Sha256HexTo(secret, out.hex);
  return out;
}

std::string KeyDigestHex(std::string_view secret) { return std::string(DigestKey(secret).view()); }

}  // namespace keygate::proxy
