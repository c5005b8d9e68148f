// One admitted model call from the moment it is forwarded to its settlement (spec §3 step 5 and
// data-plane.md "Streaming", "Upstream failures"):
//   - forwards the request with the caller's end-to-end headers (never its key), the
//     provider's key, `model` rewritten to the upstream name and x-request-id;
//   - relays the answer: a complete one as a whole; a stream event by event as each arrives,
//     keeping the usage-only chunk back unless the caller asked for it;
//   - settles the ticket with the cost and tokens of the upstream's `usage` (or, for a stream
//     cut short or an answer without usage, an upper-bound estimate of what was received), or
//     releases it when nothing was charged: a refused, reset or timed-out upstream, an upstream
//     error without usage;
//   - maps failures before any byte reached the caller to 502 (refused, reset, bad answer) and
//     504 (timeout); a stream that breaks after it began is cut, so the caller sees it end
//     without its terminating chunk;
//   - cancels the upstream request when the caller disconnects and charges what was received;
//   - leaves one usage record per call with the usage writer.
// The ticket is settled or released exactly once, on every path (the destructor releases it
// if the call never ended, as when the server stops with the call in flight).
//
// Thread safety: upstream events arrive on the exchange's io thread, one at a time; the
// client-gone notice may come from any thread and only cancels the exchange.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "http/handler.h"
#include "limits/limiter.h"
#include "proxy/guardrails.h"
#include "proxy/openai_response.h"
#include "proxy/proxy_metrics.h"
#include "proxy/upstream_client.h"
#include "proxy/usage_writer.h"

namespace keygate::proxy {

// What every call shares, owned by the DataPlane.
struct CallEnvironment {
  limits::Limiter& limiter;
  UsageWriter& usage;
  UpstreamClient& upstream;
  const Clock& clock;
  Logger& log;
  size_t max_response_bytes = 0;  // a complete answer larger than this is a 502
  ProxyMetrics& metrics;
};

// Returns the caller's headers that go upstream: end-to-end ones only. Left out: hop-by-hop
// headers (RFC 9110 §7.6.1, and any the Connection header names), the caller's credentials
// (Authorization, api-key, x-api-key, cookies), headers keygate sets itself (Host,
// Content-Length, Content-Type, Accept-Encoding, x-request-id) or that name the caller's own
// account at the provider (openai-organization, openai-project), and forwarding metadata.
// Takes the headers (their strings move, not copied: a client such as OpenAI's SDK sends a
// dozen headers that go on). Nor does a header that holds a keygate key, whatever its name
// (audit N): `caller_secret` (the caller's own bearer token, anywhere in the value), or one of
// `key_prefixes` followed by a key's random part.
http::HeaderList ForwardableHeaders(http::HeaderList headers, std::string_view caller_secret,
                                    std::span<const std::string> key_prefixes);

class ModelCall final : public UpstreamObserver, public std::enable_shared_from_this<ModelCall> {
 public:
  // `env` must outlive the call. `forward_headers` come from ForwardableHeaders().
  ModelCall(const CallEnvironment& env, Admission admission,
            std::shared_ptr<http::Responder> responder, http::HeaderList forward_headers);
  ~ModelCall() override;
  ModelCall(const ModelCall&) = delete;
  ModelCall& operator=(const ModelCall&) = delete;

  // Sends the call upstream. Called once, right after construction (through a shared_ptr).
  // The exchange runs on `io` (the caller's connection's shard).
  void Start(boost::asio::io_context& io);

  // UpstreamObserver
  void OnResponseHead(int status, std::span<const UpstreamHeader> headers, bool whole) override;
  void OnResponseData(std::string_view data) override;
  void OnResponseEnd(UpstreamOutcome outcome, std::string_view detail) override;

 private:
  // How a call is charged when it ends.
  enum class Charge {
    kUsage,    // the given usage
    kRelease,  // nothing: the reservation is released
  };

  // Begins the caller's stream with the upstream's headers (moved out) and its type.
  void BeginStream();
  // Starts relaying a stream (`whole`: every event is in hand already).
  void StartStream(bool whole);
  http::HeaderList StreamHeaders();
  http::ContentType StreamType();
  void RelayEvents(std::string_view data);
  void AppendEvent(std::string_view event, std::string* out);
  void FinishComplete();
  void FinishStream(UpstreamOutcome outcome, std::string_view detail);
  // A 502/504 in place of the answer; the ticket released.
  void FailBeforeAnswer(UpstreamOutcome outcome, std::string_view detail);
  // Whether the key has a credit or TPM limit: its calls get an output cap sent upstream, and
  // are charged at most their reservation.
  bool Bounded() const;
  // The bytes the stream's splitter holds at the stream's end (an event without its blank
  // line), read as an event and terminated, as they go to the caller ("" if none).
  std::string TakeUnterminatedEvent();
  // Redacts the provider's API key in `text` (searched from `from` on), should the upstream
  // quote it, and logs it as found in `where`. None is looked for when the provider has no key.
  void RedactProviderKey(std::string* text, size_t from, std::string_view where);
  // RedactProviderKey for a whole text (an answer's body, the events made of one), the key
  // found even where JSON escapes spell it.
  void RedactProviderKeyDecoded(std::string* text, std::string_view where);
  // The usage record's status of a call cancelled: 499 when the caller left, 503 when keygate
  // cut the connection itself (the deadline of a stop's drain).
  int CancelledStatus() const;
  // Logs that the upstream's answer held the provider's key at `where` (kept from the caller).
  void NoteEchoedKey(std::string_view where);
  // The usage writer's id of this call while in flight (0 before Start).
  uint64_t open_id_ = 0;
  UnixMillis start_ms_ = 0;  // admission (Start)
  // The call as the usage writer keeps it in flight: at its reservation.
  OpenCallInfo Reservation() const;
  // Settles or releases the ticket and records the call. Runs once.
  void Close(int status, Charge charge, TokenUsage usage);
  // An upper bound of what was received when the upstream reported no usage: the whole
  // prompt, and at most `completion_bytes` completion tokens (capped at the worst case).
  TokenUsage EstimateReceived(int64_t completion_bytes) const;

  const CallEnvironment& env_;
  Admission admission_;
  std::shared_ptr<http::Responder> responder_;
  http::HeaderList forward_headers_;
  std::shared_ptr<UpstreamCall> upstream_call_;
  const int64_t start_ns_;
  // When the upstream call was started and when it ended, if it was and did (the time the
  // answer waited on it, which Close() tells the responder).
  std::optional<int64_t> upstream_start_ns_;
  std::optional<int64_t> upstream_end_ns_;
  int64_t head_ns_ = 0;

  // Upstream answer.
  int upstream_status_ = 0;
  http::HeaderList response_headers_;  // the upstream's headers the caller gets
  std::optional<http::ContentType> upstream_type_;  // its Content-Type, when it sent one
  std::string body_;              // a complete answer, or an error answer to a stream
  bool body_too_large_ = false;
  // Content-Encoding of an answer encoded though keygate asked for none: unreadable to it
  // (usage included) and not the caller's to decode, so it is never relayed.
  std::string encoding_;
  bool streaming_ = false;        // relaying a stream to the caller
  bool whole_stream_ = false;     // ... one whose every event was in hand: sent at its end
  bool relayed_ = false;          // some of the stream's bytes are on their way to the caller
  bool event_stream_answer_ = false;  // the upstream answered text/event-stream
  bool json_answer_ = false;          // the upstream answered application/json (or, sniffed, JSON)
  // A stream request answered 200 as text/plain: its first byte says whether it is an answer
  // in one piece or a stream (OnResponseData). `sniffed_whole_`: the head said the whole
  // answer was in hand.
  bool sniffing_ = false;
  bool sniffed_whole_ = false;
  std::string whole_events_;      // the events of such a stream, as relayed
  SseSplitter splitter_;
  EventShapes event_shapes_;  // what this stream's events repeat (ReadEvent)
  std::vector<std::string_view> events_;
  std::optional<TokenUsage> stream_usage_;
  int64_t completion_bytes_ = 0;  // completion text relayed so far (stream)
  bool closed_ = false;
  std::atomic<bool> client_gone_{false};
};

}  // namespace keygate::proxy
