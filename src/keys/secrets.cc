#include "keys/secrets.h"

// OpenSSL's low-level SHA-256 (SHA256_Init/Update/Final) is deprecated in OpenSSL 3 in favour
// of EVP, but EVP (and the one-shot SHA256(), which now goes through it) looks the algorithm
// up in a locked provider table and allocates a context on every call, which costs several
// times the hash of a 50-byte key and serializes the management threads on that lock. Same
// algorithm, same assembly, a context on the stack (as proxy/key_digest.cc does).
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "common/hex.h"
#include "common/secret_shape.h"

namespace keygate::keys {
namespace {

constexpr char kBase62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr size_t kMaskTail = 4;
constexpr size_t kRandomIdBytes = 8;

// Big-number base conversion of the 32 bytes: every output digit depends on every input
// bit, and the length is fixed, so no information leaks through the length. The number is
// held as eight 32-bit big-endian limbs (a 64-bit accumulator never overflows: the remainder
// is below 62), which gives exactly the digits of a byte-by-byte long division.
std::string Base62(const std::array<uint8_t, kSecretBytes>& bytes) {
  constexpr size_t kDigits = kSecretBodyChars;  // ceil(256 / log2(62))
  constexpr size_t kLimbs = kSecretBytes / 4;
  std::array<uint32_t, kLimbs> num;
  for (size_t i = 0; i < kLimbs; ++i) {
    num[i] = (uint32_t{bytes[4 * i]} << 24) | (uint32_t{bytes[4 * i + 1]} << 16) |
             (uint32_t{bytes[4 * i + 2]} << 8) | uint32_t{bytes[4 * i + 3]};
  }
  std::string out(kDigits, '0');
  for (size_t i = kDigits; i-- > 0;) {
    uint64_t remainder = 0;
    for (uint32_t& limb : num) {
      const uint64_t acc = (remainder << 32) | limb;
      limb = static_cast<uint32_t>(acc / 62);
      remainder = acc % 62;
    }
    out[i] = kBase62[remainder];
  }
  OPENSSL_cleanse(num.data(), sizeof num);
  return out;
}

std::string Hex(const uint8_t* data, size_t n) {
  std::string out(2 * n, '\0');
  HexEncode(data, n, out.data());
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

void Sha256HexTo(std::string_view secret, char* out) {
  static_assert(kSha256HexSize == 2 * SHA256_DIGEST_LENGTH);
  uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256_CTX context;
  SHA256_Init(&context);
  SHA256_Update(&context, secret.data(), secret.size());
  SHA256_Final(digest, &context);
  OPENSSL_cleanse(&context, sizeof context);
  HexEncode(digest, sizeof digest, out);
}

std::string Sha256Hex(std::string_view secret) {
  std::string hex(kSha256HexSize, '\0');
  Sha256HexTo(secret, hex.data());
  return hex;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  // Every byte is looked at, eight at a time, whatever differs first; the empty asm keeps the
  // compiler from reasoning about `diff` and leaving the loop early. OpenSSL's CRYPTO_memcmp
  // does the same a byte at a time (every model call compares a 64-character digest).
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + sizeof(uint64_t) <= a.size(); i += sizeof(uint64_t)) {
    uint64_t x = 0;
    uint64_t y = 0;
    std::memcpy(&x, a.data() + i, sizeof x);
    std::memcpy(&y, b.data() + i, sizeof y);
    diff |= x ^ y;
    asm volatile("" : "+r"(diff));
  }
  for (; i < a.size(); ++i) {
    diff |= static_cast<uint8_t>(a[i] ^ b[i]);
    asm volatile("" : "+r"(diff));
  }
  return diff == 0;
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
