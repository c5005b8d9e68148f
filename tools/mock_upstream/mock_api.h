// The mock upstream's behaviour, as a plain function from a request to a Reply that the
// transport (server.h) then carries out. No sockets here, so every rule is easy to read.
//
// Endpoints (OpenAI's wire format):
//   POST /v1/chat/completions  chat.completion, or SSE chat.completion.chunk events if "stream"
//   POST /v1/embeddings        a list of 8-float embeddings ("encoding_format": "base64" too)
//   GET  /v1/models            echo, gpt-4o-mini, text-embedding-3-small
//   GET  /mock/stats           accounting for tests (stats.h); POST /mock/reset zeroes it
//
// Deterministic token counts (so tests can predict charges exactly):
//   prompt_tokens (chat)       = ceil(B / 4) + 3 * M, where B is the total UTF-8 bytes of every
//                                message's content (a string, or the "text" of each content
//                                part) and M the number of messages. This never exceeds keygate's
//                                upper-bound estimate (UTF-8 bytes plus a per-message overhead).
//   reply                      = "echo: " + the last user message's text, or kFixedReply when
//                                there is no user text. With a limit L (max_completion_tokens,
//                                else max_tokens) the reply is cut to its first L words and
//                                finish_reason is "length", else "stop".
//   completion_tokens          = the number of words in the reply (runs of non-whitespace),
//                                i.e. min(L, words).
//   prompt_tokens (embeddings) = sum over inputs of ceil(bytes / 4) for a string, or its length
//                                for an array of token ids; total_tokens = prompt_tokens.
//
// Streams: `chunks` content events (the reply split at UTF-8 boundaries into near-equal
// parts; the first carries "role": "assistant", the last the finish_reason), then, when
// stream_options.include_usage is true, one event with "choices": [] and usage (earlier events
// then carry "usage": null, as OpenAI's do), then "data: [DONE]". `x-mock-chunks` and
// `x-mock-chunk-delay-ms` request headers override the server's defaults per request.
//
// Faults, from the `x-mock-fault` header or else a model suffix "@<fault>" ("echo@500"); a
// comma-separated list may combine one delay with one other fault ("delay:50,reset"):
//   delay:<ms>  answer after ms        500   500 server_error         429  429, Retry-After: 1
//   400         400 invalid_request    reset plain: close with no answer (TCP RST); stream: send
//               two content events, then close (FIN) without the terminating chunk
//   hang        never answer; the connection stays open until the client closes it
//   badchunk    a 200 event-stream head and a malformed chunk-size line in one write, then
//               close (FIN): an answer broken before its first event
// The "model" field of every answer echoes the request's model exactly as sent.
//
// Thread safety: MockApi is immutable after construction apart from the Stats it is given,
// which is thread-safe; Handle may run on every io thread at once.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stats.h"

namespace mock_upstream {

inline constexpr std::string_view kFixedReply =
    "This is a deterministic reply from the keygate mock upstream.";
inline constexpr int kMaxDelayMs = 600'000;
inline constexpr int kMaxChunks = 10'000;
// Fault "reset" on a stream: content events sent before the connection is closed.
inline constexpr size_t kResetAfterContentEvents = 2;

enum class FaultKind {
  kNone,         // answer normally
  kBadRequest,   // 400 invalid_request_error
  kRateLimit,    // 429 with Retry-After: 1
  kServerError,  // 500 server_error
  kError200,     // 200 whose body is an error object (as some aggregators answer)
  kError200Usage,  // the same, with a usage object (7 prompt tokens)
  kReset,        // plain: close without answering; stream: two events then close
  kHang,         // never answer
  kBadChunk,     // a stream head and a malformed chunk in one write, then close
};

struct Fault {
  int delay_ms = 0;
  FaultKind kind = FaultKind::kNone;
};

// Takes the first item of `list` (up to `separator` or its end, the spaces around it trimmed)
// off `list`, separator included.
std::string_view TakeListItem(std::string_view* list, char separator);

// Parses "delay:<ms>", "500", "429", "400", "reset", "hang", "badchunk", or a comma-separated
// list with at
// most one delay and one other fault. Returns nullopt for anything else (or a delay outside
// 0..kMaxDelayMs).
std::optional<Fault> ParseFault(std::string_view spec);

// What the transport must do with a request.
enum class Action {
  kRespond,  // write status, headers and body
  kStream,   // write SSE events (body, cut at event_ends), chunk_delay_ms apart
  kClose,    // close the connection abortively without answering
  kHang,     // answer nothing; close only when the client does
  kBadChunk, // write a stream head and a malformed chunk-size line at once, then close
};

struct Reply {
  Action action = Action::kRespond;
  RequestKind kind = RequestKind::kOther;  // for the counters
  int delay_ms = 0;                        // wait this long before acting
  int status = 200;
  std::string_view content_type = "application/json";
  int retry_after_s = 0;  // > 0 adds Retry-After
  // kRespond: the body. kStream: every SSE event ("data: ...\n\n") back to back.
  std::string body;
  std::vector<size_t> event_ends;  // kStream: end offset of each event within body
  size_t content_events = 0;       // kStream: how many leading events are content chunks
  bool reset_mid_stream = false;   // kStream: after kResetAfterContentEvents, close (no terminator)
  int chunk_delay_ms = 0;          // kStream: pause between content events

  // Empties the reply for reuse, keeping the capacity of body and event_ends.
  void Clear();
};

// The parts of an HTTP request the API looks at; views into the transport's buffers.
struct RequestView {
  std::string_view method;  // "GET", "POST", ...
  std::string_view target;  // path and query, e.g. "/v1/models?x=1"
  std::string_view body;
  std::optional<std::string_view> fault;           // x-mock-fault
  std::optional<std::string_view> chunks;          // x-mock-chunks
  std::optional<std::string_view> chunk_delay_ms;  // x-mock-chunk-delay-ms
  // x-mock-usage: "PROMPT,COMPLETION" (integers, negative ones too): the usage a chat answer
  // reports instead of its own counts, as a misbehaving provider might.
  std::optional<std::string_view> usage;
  // x-mock-ignore-stream: answers a chat asked as a stream with a plain completion.
  bool ignore_stream = false;
};

struct StreamDefaults {
  int chunks = 4;          // 1..kMaxChunks
  int chunk_delay_ms = 0;  // 0..kMaxDelayMs
};

class MockApi {
 public:
  // Does not take ownership of `stats`, which must outlive this object.
  MockApi(StreamDefaults defaults, Stats& stats) : defaults_(defaults), stats_(stats) {}

  // Fills `reply` (cleared first) for `request`. /mock/stats and /mock/reset act on the Stats
  // here; the caller records every other request (reply->kind tells which) before acting.
  // Never throws for any input: bad input becomes an OpenAI-style 4xx reply.
  void Handle(const RequestView& request, Reply* reply) const;

 private:
  // POST /v1/chat/completions (chat) or /v1/embeddings: parse, resolve the fault, answer.
  void HandlePost(bool chat, const RequestView& request, Reply* reply) const;

  StreamDefaults defaults_;
  Stats& stats_;
  mutable std::atomic<uint64_t> next_id_{0};  // "chatcmpl-mock-<n>"
};

// ceil(bytes / 4) + 3 per message, as documented above; exposed for tests.
int64_t ChatPromptTokens(int64_t content_bytes, int64_t message_count);

}  // namespace mock_upstream
