#include "common/thread_name.h"

#include <pthread.h>

#include <string>

namespace keygate {

void NameThisThread(std::string_view name) {
  constexpr size_t kMaxNameLength = 15;  // the kernel's limit, without the terminator
  const std::string cut(name.substr(0, kMaxNameLength));
  pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace keygate
