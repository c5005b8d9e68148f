// Names the calling thread, as `top -H`, `ps -L`, perf and gdb show it, so that an operator can
// tell the io threads from the store's writer and the other background threads.
//
// Thread safety: affects the calling thread only.
#pragma once

#include <string_view>

namespace keygate {

// `name` is cut to the kernel's 15 characters. A failure is ignored: names help operators,
// nothing depends on them.
void NameThisThread(std::string_view name);

}  // namespace keygate
