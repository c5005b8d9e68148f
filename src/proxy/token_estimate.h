// The prompt-size estimate behind every reservation (spec §3 steps 3 and 4; the reasoning is in
// docs/decisions/0011-data-plane.md, "The prompt estimate").
//
// Upper bound: in a byte-level BPE vocabulary (OpenAI, Llama 3, Qwen, DeepSeek...) or a
// byte-fallback SentencePiece one (Llama 2, Mistral), every token covers at least one byte, so
// a text of B UTF-8 bytes is at most B tokens. Each chat message adds kPerMessageTokens for its
// role markers and each conversation kPerConversationTokens for the reply primer; each embedding
// input adds kPerInputTokens (begin/end markers). A part that is not text (an image, audio, a
// file) has no byte bound: such an input is bounded by the model's context alone. Every input is
// capped at the model's context, which no upstream lets a prompt exceed.
//
// Lower bound: used only to refuse, before anything is reserved or forwarded, a prompt that
// certainly cannot fit the model's context, so it must hold for any text. Ordinary words are
// short tokens, but runs are not: in cl100k_base and o200k_base a run of spaces costs about one
// token per 128 bytes, a line of '=' one per 64, a repeated word one per word (measured with a
// tokenizer by a black-box audit, 2026-12-06). A tokenizer's longest token bounds them all, so
// ceil(B / kMaxBytesPerToken), at twice the longest seen, under-counts any text. It refuses only
// the grossly oversized; prompts between the two bounds go upstream, which refuses its own.
//
// Thread safety: pure functions and plain values.
#pragma once

#include <cstdint>
#include <vector>

namespace keygate::proxy {

inline constexpr int64_t kPerMessageTokens = 4;
inline constexpr int64_t kPerConversationTokens = 8;
inline constexpr int64_t kPerInputTokens = 2;
inline constexpr int64_t kMaxBytesPerToken = 256;

// The size of one input as the model will read it.
struct InputSize {
  int64_t text_bytes = 0;       // UTF-8 bytes of the text the model reads
  int64_t token_ids = 0;        // tokens given as ids (embeddings), counted exactly
  int64_t overhead_tokens = 0;  // markers the model adds (per message, per input)
  bool unbounded = false;       // holds a part that is not text: only the context bounds it
};

// A request's inputs: one for a chat (the whole conversation), one per embedding input.
struct PromptSize {
  std::vector<InputSize> inputs;
};

// Returns the upper bound, in tokens, of what `prompt` can count upstream for a model with a
// context of `context_tokens`: the sum over inputs of
// min(text_bytes + token_ids + overhead_tokens, context_tokens), or context_tokens for an
// unbounded input. Saturates instead of overflowing. REQUIRES: context_tokens >= 1.
int64_t PromptUpperBound(const PromptSize& prompt, int64_t context_tokens);

// Returns the largest lower bound over the inputs of `prompt`:
// ceil(text_bytes / kMaxBytesPerToken) + token_ids. 0 when there is no input.
int64_t LargestInputLowerBound(const PromptSize& prompt);

}  // namespace keygate::proxy
