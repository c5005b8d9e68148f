#include "proxy/token_estimate.h"

#include <algorithm>

#include "common/saturating.h"

namespace keygate::proxy {

int64_t PromptUpperBound(const PromptSize& prompt, int64_t context_tokens) {
  int64_t total = 0;
  for (const InputSize& input : prompt.inputs) {
    int64_t bound = context_tokens;
    if (!input.unbounded) {
      const int64_t counted =
          SaturatingAdd(SaturatingAdd(input.text_bytes, input.token_ids), input.overhead_tokens);
      bound = std::min(counted, context_tokens);
    }
    total = SaturatingAdd(total, bound);
  }
  return total;
}

int64_t LargestInputLowerBound(const PromptSize& prompt) {
  int64_t largest = 0;
  for (const InputSize& input : prompt.inputs) {
    const int64_t from_text = input.text_bytes / kMaxBytesPerToken +
                              (input.text_bytes % kMaxBytesPerToken != 0 ? 1 : 0);
    largest = std::max(largest, SaturatingAdd(from_text, input.token_ids));
  }
  return largest;
}

}  // namespace keygate::proxy
