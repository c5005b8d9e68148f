// Searching text for a string through glibc's memmem. std::string_view::find tries each
// occurrence of the needle's first character, and the text the data plane searches is full of
// them: JSON of quotes, English of the `s` an `sk-...` key begins with. Every answer and stream
// event is searched, so this matters.
//
// Thread safety: pure functions.
#pragma once

#include <string.h>  // memmem (GNU)

#include <cstddef>
#include <string_view>

namespace keygate {

// The position of the first `needle` in `text` at or after `from`, or std::string_view::npos.
inline size_t FindBytes(std::string_view text, std::string_view needle, size_t from = 0) {
  // Never memmem on a view without data (a default one's is null: UB, found by UBSan: audit U).
  if (from > text.size() || text.size() - from < needle.size()) return std::string_view::npos;
  if (needle.empty()) return from;
  const void* at = memmem(text.data() + from, text.size() - from, needle.data(), needle.size());
  return at == nullptr ? std::string_view::npos
                       : static_cast<size_t>(static_cast<const char*>(at) - text.data());
}

}  // namespace keygate
