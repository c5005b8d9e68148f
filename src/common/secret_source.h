// Randomness for secrets, injected like the clock. OsSecretSource reads the kernel CSPRNG
// (getrandom(2)); tests may use a seeded source for reproducible ids.
//
// Thread safety: implementations must be safe to call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

namespace keygate {

class SecretSource {
 public:
  virtual ~SecretSource() = default;
  // Fills `out[0..n)` with random bytes. Aborts the process if the OS CSPRNG fails: a
  // gateway that cannot make secrets must not make weak ones.
  virtual void Fill(uint8_t* out, size_t n) = 0;
};

class OsSecretSource final : public SecretSource {
 public:
  void Fill(uint8_t* out, size_t n) override;
};

}  // namespace keygate
