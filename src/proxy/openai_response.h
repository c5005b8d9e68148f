// The data plane's reading of an upstream's answer: the `usage` block of a complete response,
// and the Server-Sent Events of a stream (spec data-plane.md "Streaming"), cut into whole
// events so that each is relayed as soon as it is complete and the usage-only one can be kept
// back.
//
// Thread safety: pure functions; an SseSplitter belongs to one stream.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/pricing.h"

namespace keygate::proxy {

// What a usage object must report: a chat completion's its completion tokens too; an
// embedding's has none (absent or null: 0).
enum class UsageCounts { kPromptAndCompletion, kPromptOnly };

// The most tokens a usage object may report in one count: 10,000 times the largest context the
// catalog takes. More is an upstream's error (audit Z: 5e18 tokens, charged as reported to a key
// without limits, wrapped its totals negative), read as no usage: the call is charged as if
// none came, never free.
inline constexpr int64_t kMostTokensReported = 1'000'000'000'000;

// Returns the token counts of the last `usage` object of a JSON response or stream event
// payload (prompt_tokens, and completion_tokens, or 0 when absent or null and `counts` is
// kPromptOnly), or nullopt if there is no `"usage": {...}` member whose object parses and has
// the counts `counts` needs as integers from 0 to kMostTokensReported. Only the usage object
// is parsed, not the whole answer.
std::optional<TokenUsage> ParseUsage(std::string_view json, UsageCounts counts);

// A whole answer as the events a stream of it would have been, for a caller who asked to
// stream from an upstream that answered in one piece (audit M: the openai client read such an
// answer as an empty stream). A chat completion (`"object": "chat.completion"`): per choice, a
// chunk with its role, then one with the rest of its message as the delta (each tool call given
// its index, a choice without an index given its position) with its logprobs and finish
// reason; then, when `with_usage`, the usage-only chunk, then `data: [DONE]`. An error object
// (`"error"` without `"choices"`): the one event a stream's error is. nullopt for anything else
// (invalid JSON, another object): it is relayed as it came. Every piece is the answer's own
// text (its numbers and escapes as written), without the whitespace between tokens.
std::optional<std::string> AnswerAsEvents(std::string_view body, bool with_usage);

// Whether `text` holds a JSON escape that can spell a secret's character: `\uXXXX`, or `\/`
// (the default of PHP's and some Java encoders for `/`, which half of base64 credentials hold:
// audit X saw a key with `/` reach the caller so). TextEscapesDecoded is worth running only then.
bool HasHidingEscape(std::string_view text);

// `text` with each escape a secret's character may hide behind decoded where it lies, whatever
// else the text is: `\uXXXX` of a printable ASCII character other than `"` and `\`, and `\/`
// (an escaped backslash stays as it is, and what follows it too). Valid JSON reads the same
// after, its numbers as written; and text a JSON parser refuses yet a lenient client reads (a
// NaN, deep nesting, a byte that is no UTF-8, data over several lines: audit CC) is decoded
// alike. Any secret a parser would read out of JSON is in what this returns, for a secret of
// printable ASCII other than `"` and `\` (a parser's text written again escapes those too).
std::string TextEscapesDecoded(std::string_view text);

// For a JSON object with an `error` member and no `choices` (an upstream's error, whatever its
// status: some aggregators answer errors with 200), the status a caller should get for it: its
// `error.code` when that is a number from 400 to 599 (OpenRouter's shape), 502 otherwise.
// nullopt for anything else.
std::optional<int> ErrorAnswerStatus(std::string_view body);

namespace internal {
// ParseUsage's two readers of the usage object at the start of `object`, for tests: the
// scanner (nullopt also when it leaves the object to the full parser) and Boost.JSON's parser.
std::optional<TokenUsage> ScanUsage(std::string_view object,
                                    UsageCounts counts = UsageCounts::kPromptOnly);
std::optional<TokenUsage> ParseUsageObject(std::string_view object,
                                           UsageCounts counts = UsageCounts::kPromptOnly);
}  // namespace internal

// Splits a byte stream into SSE events. An event ends with a blank line ("\n\n", "\r\n\r\n" or
// "\r\r", per the SSE specification); its text includes that terminator, so that relaying the
// events back to back reproduces the stream byte for byte.
class SseSplitter {
 public:
  // Appends `data` and sets `*events` to the events completed by it, in order (cleared first).
  // The views stay valid until the next call to Feed(), and while `data`'s bytes do (when no
  // unfinished event was pending, the events are cut from `data` itself, without a copy).
  void Feed(std::string_view data, std::vector<std::string_view>* events);

  // Bytes received after the last complete event (an event cut short).
  std::string_view Pending() const;

  // Total bytes fed so far.
  uint64_t bytes_fed() const { return bytes_fed_; }

 private:
  std::string buffer_;
  size_t consumed_ = 0;  // bytes of buffer_ already returned as events
  size_t scanned_ = 0;   // bytes of buffer_ searched for a terminator without finding one
  uint64_t bytes_fed_ = 0;
};

// What a stream event is, for the relay.
enum class EventKind {
  kContent,           // anything else: relayed
  kContentWithUsage,  // a chunk with choices and a usage object (some providers): relayed
  kUsageOnly,         // a chunk with "choices": [] and a usage object: relayed only on request
  kDone,              // "data: [DONE]"
};

// Classifies one event as returned by SseSplitter (terminator included), by its first data
// line.
EventKind ClassifyEvent(std::string_view event);
// The same, for an event's payload (EventData, or JoinedEventData).
EventKind ClassifyData(std::string_view data);

// The JSON payload of an event: the text after "data:" (and one optional space) on its data
// line, without the line terminator; empty if the event has no data line. Only the first data
// line is returned (OpenAI-compatible upstreams send one per event).
std::string_view EventData(std::string_view event);
// The payload of an event whose data spans several data lines, as SSE defines it: each line's
// text after "data:" (and one optional space), joined by line feeds.
std::string JoinedEventData(std::string_view event);

// If `event` carries a top-level `"usage":null` just before the closing brace of its payload,
// as chunks do when usage was asked for, returns the event without it; else returns nullopt.
// A caller who did not ask for usage then sees the chunks the upstream would have sent.
std::optional<std::string> WithoutNullUsage(std::string_view event);

// Returns an upper bound of the completion text carried by `event`, in UTF-8 bytes: the raw
// lengths of every "content", "arguments", "refusal", "reasoning" and "reasoning_content" string
// value in it (escapes count as their raw bytes, which is never less than what they decode to).
int64_t CompletionTextBytes(std::string_view event);

// What the relay needs of one event (terminator included, as SseSplitter returns it).
struct EventFacts {
  EventKind kind = EventKind::kContent;
  int64_t completion_text_bytes = 0;  // as CompletionTextBytes()
  std::optional<TokenUsage> usage;    // the usage object's counts, when it has one that reads
  // Where the top-level `,"usage":null` that WithoutNullUsage() removes begins; npos if none.
  size_t null_usage_at = std::string_view::npos;
};

// Appends `event` without its `,"usage":null` at `offset` (EventFacts::null_usage_at) to *out.
void AppendWithoutNullUsage(std::string_view event, size_t offset, std::string* out);

// The facts of `event` in one pass over its payload by a lexer that finds its strings through
// bitmaps of quotes and backslashes, 64 bytes at a time (internal::QuoteIndex), and checks no
// grammar: the kind from its `usage` (an object) and `choices` (an empty array) members, the
// usage from the last `usage` object (read by the scanner of proxy/json_scanner.h, or the full
// parser), the completion text from the named string members, each at any depth as the
// searches above find them (but whatever the spacing, and never inside a string). When the
// payload is cut short (an unterminated string or usage object), the searches decide instead.
EventFacts ReadEvent(std::string_view event);

// What a stream's events repeat, learned from them as ReadEvent reads them, so that it reads
// less of the next ones. Two shapes, each only compared against an event's bytes, never
// trusted:
// - The prefix: the bytes of a payload up to its first member that can tell something
//   (`choices`, `usage`, a completion member), as OpenAI's chunks repeat their id, object,
//   created, model and fingerprint there. Learned from the first event that has such a member
//   (after a `{` or a `,`), then skipped in each event whose payload begins with the same
//   bytes. Empty until learned, and for good if those bytes are more than kPrefixCapacity.
// - The chunk: a content chunk's payload around its one completion string, as OpenAI's content
//   chunks differ only in that string's text. Learned from each event lexed that has exactly
//   one completion string and no usage object (and whose bytes before and after that string
//   fit kChunkHeadCapacity and kChunkTailCapacity). An event whose payload is the same bytes
//   around another string (its end found as the lexer finds it) has the same facts but for
//   that string's length, and is not lexed at all.
// One per stream; thread safety: one thread.
class EventShapes {
 public:
  static constexpr size_t kPrefixCapacity = 192;
  static constexpr size_t kChunkHeadCapacity = 256;
  static constexpr size_t kChunkTailCapacity = 128;

  std::string_view prefix() const { return std::string_view(prefix_.data(), prefix_size_); }
  bool prefix_learned() const { return prefix_learned_; }
  // The chunk's bytes up to its completion string's opening quote (included) and from its
  // closing quote (included) to the payload's end; both empty until learned.
  std::string_view chunk_head() const { return std::string_view(head_.data(), head_size_); }
  std::string_view chunk_tail() const { return std::string_view(tail_.data(), tail_size_); }

 private:
  friend struct EventShapesAccess;
  std::array<char, kPrefixCapacity> prefix_;  // the first prefix_size_ bytes hold the prefix
  size_t prefix_size_ = 0;
  bool prefix_learned_ = false;
  std::array<char, kChunkHeadCapacity> head_;
  std::array<char, kChunkTailCapacity> tail_;
  size_t head_size_ = 0;  // 0: no chunk learned
  size_t tail_size_ = 0;
};

// ReadEvent for the events of one stream, in order: the same facts, with what `shapes` holds
// compared rather than read (and learned from the events).
EventFacts ReadEvent(std::string_view event, EventShapes* shapes);

namespace internal {
// ReadEvent's two readers, for tests: the lexer (nullopt when it gives up) and the searches.
std::optional<EventFacts> ScanEvent(std::string_view event, EventShapes* shapes = nullptr);
// Whether `event` is the chunk `shapes` holds around another string, which ReadEvent then
// compares instead of lexing.
bool MatchesChunk(std::string_view event, const EventShapes& shapes);
EventFacts SearchEvent(std::string_view event);
}  // namespace internal

}  // namespace keygate::proxy
