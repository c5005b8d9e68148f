#include "proxy/key_digest.h"

#include <openssl/evp.h>

#include <memory>

#include "keys/secrets.h"

namespace keygate::proxy {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

struct MdDeleter {
  void operator()(EVP_MD* md) const { EVP_MD_free(md); }
};
struct ContextDeleter {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

const EVP_MD* Sha256() {
  static const std::unique_ptr<EVP_MD, MdDeleter> md(EVP_MD_fetch(nullptr, "SHA256", nullptr));
  return md.get();
}

}  // namespace

std::string KeyDigestHex(std::string_view secret) {
  thread_local const std::unique_ptr<EVP_MD_CTX, ContextDeleter> context(EVP_MD_CTX_new());
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  const bool ok = Sha256() != nullptr && context != nullptr &&
                  EVP_DigestInit_ex2(context.get(), Sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(context.get(), secret.data(), secret.size()) == 1 &&
                  EVP_DigestFinal_ex(context.get(), digest, &length) == 1;
  // Never expected; the slow path gives the same answer.
  if (!ok) return keys::Sha256Hex(secret);
  std::string hex(2 * length, '0');
  for (unsigned int i = 0; i < length; ++i) {
    hex[2 * i] = kHexDigits[digest[i] >> 4];
    hex[2 * i + 1] = kHexDigits[digest[i] & 0x0F];
  }
  return hex;
}

}  // namespace keygate::proxy
