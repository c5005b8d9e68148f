#include "proxy/pricing.h"

#include <algorithm>
#include <limits>

#include "proxy/token_estimate.h"

namespace keygate::proxy {
namespace {

int64_t SaturatingMultiply(int64_t a, int64_t b) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) return std::numeric_limits<int64_t>::max();
  return product;
}

}  // namespace

MicroUsd CostOf(const config::ModelConfig& model, const TokenUsage& usage) {
  return CostForTokens(std::max<int64_t>(usage.prompt_tokens, 0), model.input_micro_usd_per_mtok,
                       std::max<int64_t>(usage.completion_tokens, 0),
                       model.output_micro_usd_per_mtok);
}

int64_t CompletionUpperBound(const config::ModelConfig& model, const ModelRequest& request) {
  if (request.endpoint == Endpoint::kEmbeddings) return 0;
  int64_t per_choice = model.max_output_tokens > 0 ? model.max_output_tokens : model.context_tokens;
  if (request.max_completion_tokens.has_value()) per_choice = *request.max_completion_tokens;
  return SaturatingMultiply(per_choice, std::max<int64_t>(request.choices, 1));
}

WorstCase WorstCaseOf(const config::ModelConfig& model, const ModelRequest& request) {
  WorstCase worst;
  worst.prompt_tokens = PromptUpperBound(request.prompt, std::max<int64_t>(model.context_tokens, 1));
  worst.completion_tokens = CompletionUpperBound(model, request);
  worst.cost = CostOf(model, {worst.prompt_tokens, worst.completion_tokens});
  return worst;
}

}  // namespace keygate::proxy
