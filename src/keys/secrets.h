// Secrets of every credential kind (spec §1): 32 bytes from a SecretSource, base62-encoded
// behind a readable prefix; only the SHA-256 digest (lowercase hex, the public id) is stored.
//
// Thread safety: pure functions (GenerateSecret uses the given source, which is thread-safe).
#pragma once

#include <string>
#include <string_view>

#include "common/secret_source.h"

namespace keygate::keys {

inline constexpr size_t kSecretBytes = 32;
inline constexpr std::string_view kMaskDots = "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2";

// prefix + base62(32 random bytes), 43 characters of base62 after the prefix.
std::string GenerateSecret(std::string_view prefix, SecretSource& source);

// Lowercase hex SHA-256 of `secret` (64 chars).
std::string Sha256Hex(std::string_view secret);
inline constexpr size_t kSha256HexSize = 64;
// The same characters written to out[0, kSha256HexSize), without an allocation (every model
// call's authentication; see proxy/key_digest.h). REQUIRES: out has room for them.
void Sha256HexTo(std::string_view secret, char* out);

// Compares two strings in time that depends only on their lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// "sk-kg-••••a91c": the prefix, four bullets, the last four characters. Never reveals more.
// A secret shorter than prefix + 8 characters is masked entirely after the prefix.
std::string MaskSecret(std::string_view prefix, std::string_view secret);

// A short random id for entities that are not secrets ("org_" + 16 hex).
std::string RandomId(std::string_view prefix, SecretSource& source);

}  // namespace keygate::keys
