#include "keys/secrets.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>

namespace keygate::keys {
namespace {

constexpr char kBase62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr char kHex[] = "0123456789abcdef";
constexpr size_t kMaskTail = 4;
constexpr size_t kRandomIdBytes = 8;

// Big-number base conversion of the 32 bytes: every output digit depends on every input
// bit, and the length is fixed, so no information leaks through the length.
std::string Base62(const std::array<uint8_t, kSecretBytes>& bytes) {
  constexpr size_t kDigits = 43;  // ceil(256 / log2(62))
  std::array<uint8_t, kSecretBytes> num = bytes;
  std::string out(kDigits, '0');
  for (size_t i = kDigits; i-- > 0;) {
    uint32_t remainder = 0;
    for (uint8_t& byte : num) {
      uint32_t acc = (remainder << 8) | byte;
      byte = static_cast<uint8_t>(acc / 62);
      remainder = acc % 62;
    }
    out[i] = kBase62[remainder];
  }
  return out;
}

std::string Hex(const uint8_t* data, size_t n) {
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 0xf]);
  }
  return out;
}

}  // namespace

std::string GenerateSecret(std::string_view prefix, SecretSource& source) {
  std::array<uint8_t, kSecretBytes> bytes;
  source.Fill(bytes.data(), bytes.size());
  std::string secret(prefix);
  secret += Base62(bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return secret;
}

std::string Sha256Hex(std::string_view secret) {
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const uint8_t*>(secret.data()), secret.size(), digest);
  return Hex(digest, sizeof digest);
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string MaskSecret(std::string_view prefix, std::string_view secret) {
  std::string out(prefix);
  out += kMaskDots;
  if (secret.size() >= prefix.size() + 2 * kMaskTail) {
    out += secret.substr(secret.size() - kMaskTail);
  }
  return out;
}

std::string RandomId(std::string_view prefix, SecretSource& source) {
  uint8_t bytes[kRandomIdBytes];
  source.Fill(bytes, sizeof bytes);
  return std::string(prefix) + Hex(bytes, sizeof bytes);
}

}  // namespace keygate::keys
