#include "common/secret_source.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace keygate {

void OsSecretSource::Fill(uint8_t* out, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t got = getrandom(out + done, n - done, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      std::fputs("keygate: getrandom failed; refusing to generate secrets\n", stderr);
      std::abort();
    }
    done += static_cast<size_t>(got);
  }
}

}  // namespace keygate
