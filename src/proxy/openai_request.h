// The data plane's reading of an OpenAI request body (spec data-plane.md): the fields keygate
// acts on, checked for type and range, and the size of the prompt for the token estimate
// (token_estimate.h). Everything else in the body is kept as sent and forwarded untouched.
//
// Errors are InvalidArgument, each naming the field at fault in `param` ("messages[2].content",
// "max_tokens") and in the message; the data plane answers them 400 in OpenAI's error shape
// (spec §4: bad input is never forwarded).
//
// Thread safety: safe from any thread (each thread reuses a parser of its own); a ModelRequest is
// a value owned by one call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "proxy/token_estimate.h"

namespace keygate::proxy {

// The OpenAI endpoints the data plane forwards.
enum class Endpoint {
  kChatCompletions,  // POST /v1/chat/completions
  kEmbeddings,       // POST /v1/embeddings
};

// Upper limits of fields that are otherwise free integers; above them a request is refused as
// absurd rather than allowed to reserve an overflowing amount.
inline constexpr int64_t kMaxCompletionTokensField = 100'000'000;
inline constexpr int64_t kMaxChoices = 128;

struct ModelRequest {
  Endpoint endpoint = Endpoint::kChatCompletions;
  std::string model;  // as the caller wrote it, e.g. "openai/gpt-4o-mini"
  bool stream = false;
  // stream_options.include_usage as the caller set it: whether the usage-only chunk of a
  // stream is passed on (keygate always asks the upstream for it).
  bool caller_wants_usage = false;
  // The larger of max_tokens and max_completion_tokens, when either is set, and the name of the
  // member it came from (for an error about it).
  std::optional<int64_t> max_completion_tokens;
  std::string_view cap_member = "max_tokens";
  int64_t choices = 1;  // `n`
  PromptSize prompt;
  // The body as it goes upstream, without its `model` member (UpstreamBody() puts the upstream
  // name back) nor a chat's output caps (UpstreamBody() writes the one the provider reads):
  // every other member as the caller wrote it (numbers of any size or precision included), a
  // repeated member once (the last, which keygate read); for a stream, stream_options with
  // include_usage set; without one, no stream_options (OpenAI refuses them without a stream).
  std::string body_without_model;
};

// Bodies nested deeper than this are refused (a tool's JSON schema nests a few levels a field).
inline constexpr int kMaxBodyDepth = 64;

// Parses a POST /v1/chat/completions body. Returns the request, or InvalidArgument for: a body
// that is not JSON or not an object, or nests deeper than kMaxBodyDepth; `model` missing, not a
// string or empty; `messages` missing, not an array, empty, or holding a message that is not an
// object with a `role` of OpenAI's (openai_params.h) and a `content` that is a string, an array
// of parts or null, or whose `name` or `tool_call_id` is not a string or null, or whose
// `tool_calls` is not an array or null; a text part without a string `text`; `max_tokens` or
// `max_completion_tokens` not an integer in 1..kMaxCompletionTokensField; `n` not an integer in
// 1..kMaxChoices; `stream` not a boolean; `stream_options` not an object, or its
// `include_usage` not a boolean; a member of openai_params.h's table of the wrong type or sign.
Result<ModelRequest> ParseChatRequest(std::string_view body);

namespace internal {
// ParseChatRequest without its fast path (chat_fast_parse.h): every body goes through the
// document-building parser. For tests that hold the two to the same answers.
Result<ModelRequest> ParseChatRequestFully(std::string_view body);
}  // namespace internal

// Parses a POST /v1/embeddings body. Returns the request, or InvalidArgument for: a body that
// is not a JSON object (or nests deeper than kMaxBodyDepth); `model` missing, not a string or
// empty; `input` missing, an empty string or array, or anything other than a string, an array
// of strings, an array of token ids (non-negative integers) or an array of such arrays; a
// member of openai_params.h's table of the wrong type or sign (`dimensions` below 1...).
Result<ModelRequest> ParseEmbeddingsRequest(std::string_view body);

// How a chat call's output is capped upstream: in the member `field` ("max_tokens" or
// "max_completion_tokens", whichever the provider understands), and, when the caller set no
// cap, at `tokens` (0: no cap).
struct OutputCap {
  std::string_view field = "max_tokens";
  int64_t tokens = 0;
};

// Returns the body to send upstream: the caller's body with `model` replaced by
// `upstream_model` (as its first member), then for a chat call its output cap in `cap.field`
// alone: the caller's (the larger of max_tokens and max_completion_tokens, whichever members
// it used; the reservation counted on it) or, without one, `cap.tokens`. So an upstream never
// gets a member it ignores, nor both (OpenAI refuses both at once). For a stream,
// `stream_options.include_usage` is set to true (other stream options kept).
// REQUIRES: `request` came from a successful parse.
std::string UpstreamBody(const ModelRequest& request, std::string_view upstream_model,
                         OutputCap cap = {});

}  // namespace keygate::proxy
