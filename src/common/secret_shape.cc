#include "common/secret_shape.h"

#include <vector>

#include "common/ascii.h"

namespace keygate {
namespace {

constexpr size_t kUnicodeEscapeDigits = 4;

// Calls `found(start, length)` for each secret-shaped run of `text` (a maximal run of
// letters and digits, escapes aside when `json`), from its end to its start.
template <class Found>
void ForEachRunBackwards(std::string_view text, bool json, Found found) {
  size_t end = text.size();
  while (end > 0) {
    if (!IsAsciiAlnum(text[end - 1])) {
      --end;
      continue;
    }
    size_t start = end;
    while (start > 0 && IsAsciiAlnum(text[start - 1])) --start;
    size_t from = start;
    size_t backslashes = 0;
    while (json && backslashes < start && text[start - 1 - backslashes] == '\\') ++backslashes;
    if (backslashes % 2 == 1) {
      // An escape's letter, and a \u escape's four hex digits, are not part of the run (an
      // even count of backslashes is escaped backslashes, and the run starts after them).
      from += text[start] == 'u' ? 1 + kUnicodeEscapeDigits : 1;
      from = from > end ? end : from;
    }
    const size_t length = end - from;
    if (length >= kSecretBodyChars && length <= kSecretBodyChars + kMaxKeyPrefixChars) {
      found(end - kSecretBodyChars, kSecretBodyChars);
    }
    end = start;
  }
}

}  // namespace

bool HoldsSecretShape(std::string_view text) {
  bool held = false;
  ForEachRunBackwards(text, false, [&held](size_t, size_t) { held = true; });
  return held;
}

void MaskSecretShapes(std::string* text, bool json) {
  // Found first, replaced after (from the end, so that the earlier positions stay good).
  std::vector<size_t> starts;
  ForEachRunBackwards(*text, json, [&starts](size_t start, size_t) { starts.push_back(start); });
  constexpr size_t kShown = 4;
  for (size_t start : starts) {
    const std::string tail = text->substr(start + kSecretBodyChars - kShown, kShown);
    text->replace(start, kSecretBodyChars, "\u2022\u2022\u2022\u2022" + tail);
  }
}

}  // namespace keygate
