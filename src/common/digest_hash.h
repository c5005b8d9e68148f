// A hash for map keys that are hex SHA-256 digests (key hashes, lineages): 16 bytes of a hex
// digest already hold 64 random bits, so mixing the first 16 bytes spreads them as well as
// hashing all 64, at a fraction of the cost (these maps are looked up several times per model
// call). Shorter text (tests, odd callers) is hashed whole. Nobody outside keygate chooses the
// stored keys (they are digests of secrets keygate generated), so no one can flood a bucket;
// a lookup of a chosen digest only walks the bucket that is already there.
//
// Transparent: maps keyed by std::string can be searched with a string_view.
//
// Thread safety: stateless.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string_view>

namespace keygate {

struct DigestHash {
  using is_transparent = void;

  size_t operator()(std::string_view s) const noexcept {
    if (s.size() < 16) return std::hash<std::string_view>{}(s);
    uint64_t a = 0;
    uint64_t b = 0;
    std::memcpy(&a, s.data(), sizeof a);
    std::memcpy(&b, s.data() + sizeof a, sizeof b);
    uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull)) + s.size();
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    return static_cast<size_t>(h);
  }
};

}  // namespace keygate
