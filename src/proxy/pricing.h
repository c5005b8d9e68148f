// What a model call may cost before it runs and what it cost once it has (spec §3 steps 3 to
// 5, data-plane.md "Cost and usage"), in tokens and integer micro-dollars at the catalog's
// prices.
//
// cost = prompt x input price + completion x output price, summed exactly and rounded up once
// to the micro-dollar (CostForTokens). That is monotonic in each token count, so a worst case
// computed from upper bounds is never below the real cost: the promise of spec §3.
//
// Thread safety: pure functions and plain values.
#pragma once

#include <cstdint>

#include "common/money.h"
#include "config/config.h"
#include "proxy/openai_request.h"

namespace keygate::proxy {

// Token counts of one call, as the upstream's `usage` reports them (or as estimated).
struct TokenUsage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;

  int64_t total() const { return prompt_tokens + completion_tokens; }
};

// The reservation of one call.
struct WorstCase {
  int64_t prompt_tokens = 0;      // PromptUpperBound at the model's context
  int64_t completion_tokens = 0;  // n * (max_tokens, or the model's maximum output)
  MicroUsd cost = 0;

  int64_t tokens() const { return prompt_tokens + completion_tokens; }
};

// Returns the cost of `usage` at `model`'s prices. Negative counts are taken as 0.
MicroUsd CostOf(const config::ModelConfig& model, const TokenUsage& usage);

// Returns the largest number of completion tokens `request` can produce on `model`: n times
// max_tokens when given, else n times the model's maximum output (or its context, when the
// catalog gives no maximum output), and 0 for embeddings.
int64_t CompletionUpperBound(const config::ModelConfig& model, const ModelRequest& request);

// Returns the worst case of `request` on `model`: the prompt's upper bound, the completion's
// upper bound, and their cost.
WorstCase WorstCaseOf(const config::ModelConfig& model, const ModelRequest& request);

}  // namespace keygate::proxy
