#include "proxy/model_call.h"

#include <algorithm>
#include <array>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/ascii.h"
#include "common/find_bytes.h"
#include "common/secret_shape.h"
#include "http/error_response.h"
#include "store/usage_store.h"

namespace keygate::proxy {
namespace {

constexpr int kStatusClientClosed = 499;  // nginx's: the caller went away first
constexpr int kStatusServerClosed = 503;  // keygate stopped serving it (a stop's deadline)
constexpr int64_t kNanosPerMilli = 1'000'000;
// Most leading white space read before an answer of an unexpected type is taken for a stream.
constexpr size_t kSniffLimit = 4096;

// Request headers that never go upstream (see ForwardableHeaders()). The body's own (length,
// type, encoding) describe the caller's body, not the one keygate writes (audit Q: a
// Content-Encoding went up on a plain body). Providers' credential headers (a caller's own
// key has no business at the operator's provider), and the method and URL overrides a gateway
// in front of a provider may act on (audit Z).
constexpr std::array<std::string_view, 33> kDroppedRequestHeaders = {
    "connection",          "keep-alive",          "proxy-connection",
    "proxy-authenticate",  "proxy-authorization", "te",
    "trailer",             "transfer-encoding",   "upgrade",
    "host",                "content-length",      "content-type",
    "content-encoding",    "accept-encoding",     "authorization",
    "api-key",             "x-api-key",           "x-goog-api-key",
    "x-auth-token",        "ocp-apim-subscription-key",
    "cookie",              "x-request-id",        "expect",
    "openai-organization", "openai-project",      "forwarded",
    "x-real-ip",           "via",                 "x-http-method-override",
    "x-http-method",       "x-method-override",   "x-original-url",
    "x-rewrite-url"};

// Response headers of the upstream that never reach the caller: framing and hop-by-hop ones,
// the server's own, cookies, the provider's rate limits (the caller's are keygate's), and the
// provider account's identity (the operator's OpenAI organization and project: audit Z).
constexpr std::array<std::string_view, 18> kDroppedResponseHeaders = {
    "connection",                 "keep-alive",                 "proxy-connection",
    "proxy-authenticate",         "proxy-authentication-info",  "te",
    "trailer",                    "upgrade",                    "transfer-encoding",
    "content-length",             "content-type",               "content-encoding",
    "date",                       "server",                     "set-cookie",
    "alt-svc",                    "openai-organization",        "openai-project"};

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

template <size_t N>
bool Contains(const std::array<std::string_view, N>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// True if `test` holds for a token of any Connection header of `headers` (which name more
// hop-by-hop headers; several Connection lines make one list, RFC 9110 §5.3).
template <typename Headers, typename Test>
bool AnyConnectionToken(const Headers& headers, Test test) {
  for (const auto& [name, value] : headers) {
    if (name == "connection" && AnyListElement(value, test)) return true;
  }
  return false;
}

template <typename Headers>
bool NamedByConnection(const Headers& headers, std::string_view name) {
  return AnyConnectionToken(headers, [name](std::string_view token) {
    return AsciiIEquals(token, name);
  });
}

// True if the Connection headers of `headers` name any header (not only close or keep-alive).
template <typename Headers>
bool ConnectionNamesHeaders(const Headers& headers) {
  return AnyConnectionToken(headers, [](std::string_view token) {
    return !AsciiIEquals(token, "close") && !AsciiIEquals(token, "keep-alive");
  });
}

}  // namespace

http::HeaderList ForwardableHeaders(http::HeaderList headers, std::string_view caller_secret,
                                    std::span<const std::string> key_prefixes) {
  // Connection headers are dropped, never moved from: they stay readable.
  const bool named = ConnectionNamesHeaders(headers);
  // A keygate key is never handed to a provider, whatever header a client put it in
  // (x-goog-api-key, x-auth-token, ...: audit N). Recognised by its prefix, not by its shape
  // alone: a JWT or a long id often holds a run of 43 letters and digits (the review).
  // (A secret shorter than a key's random part is none: it could only be a test's.)
  if (caller_secret.size() < kSecretBodyChars) caller_secret = {};
  auto holds_key = [&](std::string_view value) {
    if (!caller_secret.empty() && value.find(caller_secret) != std::string_view::npos) {
      return true;
    }
    for (const std::string& prefix : key_prefixes) {
      if (prefix.empty()) continue;
      for (size_t at = value.find(prefix); at != std::string_view::npos;
           at = value.find(prefix, at + 1)) {
        // A key: the prefix where a token begins, then exactly a key's random part (a short
        // prefix ending in a letter otherwise finds one in any long token: audit P).
        if (at > 0 && IsAsciiAlnum(value[at - 1]) && IsAsciiAlnum(prefix.front())) continue;
        const size_t start = at + prefix.size();
        const size_t end = start + kSecretBodyChars;
        if (end > value.size() || (end < value.size() && IsAsciiAlnum(value[end]))) continue;
        if (std::all_of(value.begin() + static_cast<std::ptrdiff_t>(start),
                        value.begin() + static_cast<std::ptrdiff_t>(end), IsAsciiAlnum)) {
          return true;
        }
      }
    }
    return false;
  };
  http::HeaderList out;
  for (auto& [name, value] : headers) {
    if (Contains(kDroppedRequestHeaders, name) || StartsWith(name, "x-forwarded-") ||
        (named && NamedByConnection(headers, name)) || holds_key(value)) {
      continue;
    }
    if (out.empty()) out.reserve(headers.size());  // one allocation, and none if all drop
    out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

ModelCall::ModelCall(const CallEnvironment& env, Admission admission,
                     std::shared_ptr<http::Responder> responder, http::HeaderList forward_headers)
    : env_(env),
      admission_(std::move(admission)),
      responder_(std::move(responder)),
      forward_headers_(std::move(forward_headers)),
      start_ns_(env.clock.MonotonicNs()) {}

ModelCall::~ModelCall() {
  if (closed_) return;
  // A call dropped without ending (the server stopped with it in flight) gives its
  // reservation back to the limiter, and is recorded at it: the upstream may have run it.
  env_.limiter.Release(admission_.ticket);
  if (open_id_ != 0) env_.usage.Append(Reservation().Record(), open_id_);
}

OpenCallInfo ModelCall::Reservation() const {
  const PreparedCall& call = admission_.call;
  return OpenCallInfo{call.key.get(),          call.model,
                      responder_ ? responder_->request_id() : std::string(),
                      start_ms_,               call.worst.prompt_tokens,
                      call.worst.completion_tokens, call.worst.cost};
}

void ModelCall::Start(boost::asio::io_context& io) {
  const PreparedCall& call = admission_.call;
  UpstreamRequest request;
  request.target = call.target;
  request.path =
      call.request.endpoint == Endpoint::kEmbeddings ? "/embeddings" : "/chat/completions";
  request.headers = std::move(forward_headers_);
  request.request_id = responder_->request_id();
  // Without a cap of the caller's, the model's maximum output bounds what the reservation
  // counted on; only a key with a credit or TPM limit needs it sent (an upstream such as
  // OpenAI counts a call's max_tokens against its own rate limits).
  request.body = UpstreamBody(call.request, call.model->upstream,
                              {call.target->max_tokens_field,
                               Bounded() ? call.model->max_output_tokens : 0});
  // Kept by the usage writer while in flight, at its reservation, should keygate crash.
  start_ms_ = env_.clock.NowMs();
  open_id_ = env_.usage.Open(Reservation());
  upstream_call_ = env_.upstream.Create(std::move(request), shared_from_this(), io);
  std::weak_ptr<ModelCall> weak = weak_from_this();
  responder_->OnClientGone([weak] {
    std::shared_ptr<ModelCall> self = weak.lock();
    if (self == nullptr) return;
    // Cut by keygate at a stop before anything was sent: the client still gets an answer, the
    // upstream's if it comes first, else a 503 (FailBeforeAnswer).
    self->client_gone_ = !(self->responder_ && self->responder_->CanStillAnswer());
    self->upstream_call_->Cancel();
  });
  // Read before Start(), which may finish the call before it returns (a failed write), and
  // on a pool thread hands it to the io thread.
  upstream_start_ns_ = env_.clock.MonotonicNs();
  upstream_call_->Start();
}

namespace {

constexpr std::string_view kRedacted = "[redacted]";

// Whether `text` holds any of `secrets` (each at least kMinSecretBytes long). FindBytes:
// string_view::find would stop at every `s` of an `sk-...` key in English text (the review),
// and every answer is searched.
bool HoldsAny(std::string_view text, std::span<const std::string> secrets) {
  return std::any_of(secrets.begin(), secrets.end(), [&](const std::string& secret) {
    return FindBytes(text, secret) != std::string_view::npos;
  });
}

// A key written with JSON escapes (`\u0073k-...`) reads as the key to a client's parser (audit
// P): `text` with those escapes decoded where they lie (TextEscapesDecoded), when that holds
// one of `secrets` (so that the search that follows finds it); nullopt when it has no such
// escape, or decoded holds none. Decoded as text, not parsed and written again: whatever a
// lenient client reads is searched (audit CC: a NaN in an error body beside a key in escapes),
// and the caller gets the answer's numbers as they came (a document written again turned 1e400
// into `Infinity`).
std::optional<std::string> DecodedIfItHolds(std::string_view text,
                                            std::span<const std::string> secrets) {
  if (secrets.empty() || !HasHidingEscape(text)) return std::nullopt;
  std::string as_text = TextEscapesDecoded(text);
  if (!HoldsAny(as_text, secrets)) return std::nullopt;
  return as_text;
}

// Whether a Content-Type names `media` (parameters aside, any case).
bool IsMediaType(std::string_view type, std::string_view media) {
  return AsciiIEquals(TrimOws(type.substr(0, type.find(';'))), media);
}

// Replaces every `secret` in `text` with kRedacted.
void Redact(std::string* text, std::string_view secret) {
  for (size_t at = text->find(secret); at != std::string::npos;
       at = text->find(secret, at + kRedacted.size())) {
    text->replace(at, secret.size(), kRedacted);
  }
}

}  // namespace

void ModelCall::OnResponseHead(int status, std::span<const UpstreamHeader> headers, bool whole) {
  head_ns_ = env_.clock.MonotonicNs();
  upstream_status_ = status;
  // Kept now: the views die with this call. What the caller gets of the upstream's headers
  // (its rate limits are keygate's own, added as the answer's header_lines).
  std::string_view type;
  const bool named = ConnectionNamesHeaders(headers);
  for (const auto& [name, value] : headers) {
    // An upstream that echoes the provider's key (in a debug header, say) must not hand it
    // to a caller: the header is dropped.
    if (HoldsAny(value, admission_.call.target->secrets)) {
      NoteEchoedKey(name);
      continue;
    }
    if (name == "content-type") {
      if (type.empty()) type = value;
    } else if (name == "content-encoding") {
      // Named in the caller's error and the log: a bounded piece of the upstream's text.
      if (!value.empty() && !AsciiIEquals(value, "identity")) encoding_ = value.substr(0, 32);
    } else if (name == "x-request-id") {
      response_headers_.emplace_back("x-upstream-request-id", value);
    } else if (!Contains(kDroppedResponseHeaders, name) && !StartsWith(name, "x-ratelimit-") &&
               !(named && NamedByConnection(headers, name))) {
      response_headers_.emplace_back(name, value);
    }
  }
  if (!type.empty()) upstream_type_ = http::ContentType::Of(type);
  // An upstream error to a stream request is relayed whole, like any complete answer; so is a
  // plain JSON answer (an upstream that does not stream), whose usage then counts; an encoded
  // one is not relayed at all (OnResponseEnd).
  json_answer_ = IsMediaType(type, "application/json");
  // Events, whatever the caller asked for: searched for the provider's key as a stream's are.
  event_stream_answer_ = IsMediaType(type, "text/event-stream");
  // A JSON answer is read whole, and made a stream if the caller asked (FinishComplete).
  if (!admission_.call.request.stream || status != 200 || client_gone_ || !encoding_.empty() ||
      json_answer_) {
    return;
  }
  if (IsMediaType(type, "text/plain")) {
    // An answer in one piece, or a stream labelled so, which must not be held back to its end
    // (the third review). Its first byte tells (audit P). Any other type is relayed as events.
    sniffing_ = true;
    sniffed_whole_ = whole;
    return;
  }
  StartStream(whole);
}

void ModelCall::StartStream(bool whole) {
  streaming_ = true;
  // A stream whose every event is in hand already goes out at its end, as one answer of known
  // length (SendStream); any other begins now, so that the caller has the head at once.
  whole_stream_ = whole;
  if (!whole_stream_) BeginStream();
}

void ModelCall::BeginStream() {
  responder_->BeginStream(200, StreamHeaders(), StreamType(), admission_.rate_limits.Lines());
}

http::HeaderList ModelCall::StreamHeaders() {
  http::HeaderList out = std::move(response_headers_);
  // A stream is never to be cached: keygate's own Cache-Control, in place of the upstream's
  // (which OpenAI-compatible upstreams send too: relayed as well, the header came twice).
  std::erase_if(out, [](const auto& header) { return header.first == "cache-control"; });
  out.emplace_back("Cache-Control", "no-cache");
  return out;
}

http::ContentType ModelCall::StreamType() {
  return upstream_type_ ? std::move(*upstream_type_) : http::ContentType("text/event-stream");
}

void ModelCall::OnResponseData(std::string_view data) {
  if (streaming_) return RelayEvents(data);
  if (sniffing_) {
    const size_t first = data.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos && body_.size() + data.size() < kSniffLimit) {
      body_.append(data);  // nothing but spaces yet
      return;
    }
    sniffing_ = false;
    if (first != std::string_view::npos && data[first] == '{') {
      json_answer_ = true;  // an answer in one piece: read whole, below
    } else {
      if (client_gone_) return;  // cancelled: ends as a call cut before its answer
      std::string seen = std::move(body_);
      body_.clear();
      seen.append(data);
      StartStream(sniffed_whole_);
      return RelayEvents(seen);
    }
  }
  if (body_too_large_) return;
  if (body_.size() + data.size() > env_.max_response_bytes) {
    body_too_large_ = true;
    body_.clear();
    upstream_call_->Cancel();
    return;
  }
  body_.append(data);
}

void ModelCall::RelayEvents(std::string_view data) {
  // spec data-plane.md: each chunk passed on as it arrives. Every event completed by this read
  // goes out in one write.
  constexpr size_t kEventsOfAShortStream = 16;  // room made once, not by doubling from one
  if (events_.capacity() == 0) events_.reserve(kEventsOfAShortStream);
  splitter_.Feed(data, &events_);
  // A stream in hand whole keeps its events for the one write at its end (FinishStream).
  std::string out;
  std::string* target = whole_stream_ ? &whole_events_ : &out;
  // An event goes out as it came or shorter (AppendEvent; but for an error event decoded,
  // rare), so room for the events (and, for a whole stream, the rest its end appends) is made
  // once, not by doubling event after event.
  size_t room = whole_stream_ ? splitter_.Pending().size() : 0;
  for (std::string_view event : events_) room += event.size();
  if (room > 0) target->reserve(target->size() + room);
  const size_t from = target->size();
  for (std::string_view event : events_) AppendEvent(event, target);
  // A stream is a success, but an event in it may be an error that quotes the provider's key
  // (an `{"error": ...}` event mid-stream): one search per read of the stream.
  RedactProviderKey(target, from, "stream event");
  relayed_ = relayed_ || !target->empty();
  // Each write holds the responder until it is on the wire, so that a stream cut right after
  // (the responder released without EndStream) still delivers what came before the cut.
  if (!out.empty()) responder_->WriteChunk(std::move(out), [keep = responder_](bool) {});
}

void ModelCall::AppendEvent(std::string_view event, std::string* out) {
  const bool caller_wants_usage = admission_.call.request.caller_wants_usage;
  // An error event that spells the provider's key in escapes goes on with its escapes decoded,
  // as a body does (RedactProviderKeyDecoded). Only error events: an upstream quotes its key in
  // an error, and an ordinary event with escapes (Python's json.dumps writes every non-ASCII
  // character so) must not pay a decoding (the review).
  std::optional<std::string> decoded;
  const std::vector<std::string>& secrets = admission_.call.target->secrets;
  if (!secrets.empty() && HasHidingEscape(event) &&
      FindBytes(event, "\"error\"") != std::string_view::npos) {
    decoded = DecodedIfItHolds(event, secrets);
    if (decoded) event = *decoded;
  }
  const EventFacts facts = ReadEvent(event, &event_shapes_);
  switch (facts.kind) {
    case EventKind::kDone:
      out->append(event);
      return;
    case EventKind::kUsageOnly:
      if (facts.usage) stream_usage_ = facts.usage;
      // Asked for by keygate to settle the real cost; passed on only if the caller asked too.
      if (caller_wants_usage) out->append(event);
      return;
    case EventKind::kContentWithUsage:
      if (facts.usage) stream_usage_ = facts.usage;
      break;
    case EventKind::kContent:
      break;
  }
  completion_bytes_ += facts.completion_text_bytes;
  if (!caller_wants_usage && facts.null_usage_at != std::string_view::npos) {
    return AppendWithoutNullUsage(event, facts.null_usage_at, out);
  }
  out->append(event);
}

void ModelCall::OnResponseEnd(UpstreamOutcome outcome, std::string_view detail) {
  upstream_end_ns_ = env_.clock.MonotonicNs();
  if (streaming_) return FinishStream(outcome, detail);
  if (!encoding_.empty() && !body_too_large_ && outcome == UpstreamOutcome::kComplete) {
    // keygate asks for identity (Accept-Encoding); an upstream that encodes anyway is broken.
    // Unreadable, its usage with it: a failure, released like every other (spec data-plane.md).
    return FailBeforeAnswer(
        UpstreamOutcome::kBadResponse,
        "answered with Content-Encoding '" + encoding_ + "', which keygate does not ask for");
  }
  if (body_too_large_) {
    return FailBeforeAnswer(UpstreamOutcome::kBadResponse, "answer larger than the gateway's "
                                                           "limit on upstream responses");
  }
  if (outcome == UpstreamOutcome::kComplete) return FinishComplete();
  FailBeforeAnswer(outcome, detail);
}

void ModelCall::FinishComplete() {
  const bool success = upstream_status_ >= 200 && upstream_status_ < 300;
  std::optional<TokenUsage> usage =
      ParseUsage(body_, admission_.call.request.endpoint == Endpoint::kEmbeddings
                            ? UsageCounts::kPromptOnly
                            : UsageCounts::kPromptAndCompletion);
  // spec data-plane.md: an upstream error is charged only for the usage it reports, an error
  // answered with 200 included (the review: it was charged as a completion).
  // With or without usage (audit S: one with usage went out as a 200); usage reported is charged.
  // Whatever its type but an event stream's (audit T: typed text/plain, it went out a success,
  // charged): a client parses it as JSON all the same.
  const std::optional<int> error_status =
      success && !event_stream_answer_ ? ErrorAnswerStatus(body_) : std::nullopt;
  const bool error_answer = error_status.has_value();
  // A caller that did not ask to stream gets such an error with the status it stands for (its
  // `code`, or 502): as a 200, clients read it as a completion without choices. A streaming
  // caller gets it as a stream's error event, in a 200 (below).
  const int status =
      error_answer && !admission_.call.request.stream ? *error_status : upstream_status_;
  // The upstream's own failures (relayed as they are) count as upstream errors too; so does
  // its refusal of keygate's credential for it (audit DD: a revoked or mistyped provider key
  // showed only as the callers' 401s, which read like a refusal of their own keys).
  const bool credential_refused = upstream_status_ == 401 || upstream_status_ == 403;
  if (status >= 500 || status == 429 || credential_refused) {
    env_.metrics.CountUpstreamFailure(admission_.call.target->provider,
                                      "status_" + std::to_string(status));
  }
  if (credential_refused) {
    env_.log.Warn("proxy.upstream_refused_credential",
                  {{"request_id", responder_->request_id()},
                   {"provider", admission_.call.target->provider},
                   {"status", upstream_status_}});
  }
  Charge charge = Charge::kRelease;
  TokenUsage charged;
  if (usage) {
    charge = Charge::kUsage;
    charged = *usage;
  } else if (success && !error_answer) {
    charge = Charge::kUsage;
    charged = EstimateReceived(static_cast<int64_t>(body_.size()));
  }
  http::Response response;
  response.status = status;
  std::optional<std::string> events;
  if (admission_.call.request.stream && json_answer_ && upstream_status_ == 200) {
    // Asked to stream, answered in one piece: the caller gets the stream it asked for.
    events = AnswerAsEvents(body_, admission_.call.request.caller_wants_usage);
  }
  // An error answer quoting the provider's key ("Incorrect API key provided: ...") keeps
  // everything else; so do events (an error event, or an answer made a stream: events are
  // searched as a stream's are) sent to a call that did not ask to stream.
  // So does anything a streaming caller gets as it came (audit P: a 200 that was neither a
  // completion nor an error quoted the key to a stream request).
  if (events) {
    RedactProviderKeyDecoded(&*events, "stream event");  // written from the answer's text
    response.content_type = http::ContentType("text/event-stream");
    response.body = std::move(*events);
    response.headers = StreamHeaders();
  } else {
    // Anything but a completion or an embedding with its usage (an error, events, a 2xx of
    // another shape: audit S saw a text/plain 200 quote the key to a plain call) is searched
    // with its escapes decoded; the usual answer, for the key as written (one search: its
    // escapes, common in Python upstreams' text, would cost a parse every call).
    if (!success || event_stream_answer_ || error_answer || admission_.call.request.stream ||
        !usage || !json_answer_) {
      RedactProviderKeyDecoded(&body_, "body");
    } else {
      RedactProviderKey(&body_, 0, "body");
    }
    if (upstream_type_) response.content_type = std::move(*upstream_type_);
    response.body = std::move(body_);
    response.headers = std::move(response_headers_);
  }
  response.header_lines = admission_.rate_limits.Lines();
  // Settled before the answer leaves: a caller who sends its next call the moment it reads
  // this answer (on any connection) finds the spend and windows already current.
  Close(status, charge, charged);
  if (!client_gone_) responder_->Send(std::move(response));
  responder_.reset();
}

void ModelCall::FinishStream(UpstreamOutcome outcome, std::string_view detail) {
  const bool failed =
      outcome != UpstreamOutcome::kComplete && outcome != UpstreamOutcome::kCancelled;
  if (failed && !relayed_) {
    // Nothing of the stream is on its way to the caller: a failure before the answer, as a
    // plain call's is (released; a 502 or 504 in place of the stream if its head has not gone
    // out either, as when the head and a broken body came in one read).
    return FailBeforeAnswer(outcome, detail);
  }
  if (failed) {
    env_.metrics.CountUpstreamFailure(admission_.call.target->provider, ToString(outcome));
    env_.log.Warn("proxy.stream_broken", {{"request_id", responder_->request_id()},
                                          {"provider", admission_.call.target->provider},
                                          {"outcome", ToString(outcome)},
                                          {"detail", detail}});
  }
  // An event the upstream left without its blank line at the end of a whole stream is read as
  // any other (its usage counted, a usage-only chunk withheld unless asked for) and goes out
  // with its blank line: a client would drop an unterminated event (as the SSE standard says).
  std::string last_event;
  if (outcome == UpstreamOutcome::kComplete) last_event = TakeUnterminatedEvent();
  // spec data-plane.md: what was received is charged, from the usage chunk if it came.
  const TokenUsage usage = stream_usage_.value_or(EstimateReceived(completion_bytes_));
  int status = 200;
  if (outcome == UpstreamOutcome::kCancelled) status = CancelledStatus();
  if (outcome == UpstreamOutcome::kTimeout) status = HttpStatusFor(ErrorCode::kUpstreamTimeout);
  // Only before an answer in practice (a connection is opened first).
  if (outcome == UpstreamOutcome::kOutOfResources) status = HttpStatusFor(ErrorCode::kUnavailable);
  if (outcome == UpstreamOutcome::kReset || outcome == UpstreamOutcome::kBadResponse ||
      outcome == UpstreamOutcome::kConnectFailed) {
    status = HttpStatusFor(ErrorCode::kUpstreamFailed);
  }
  // Settled before the stream's end leaves (see FinishComplete).
  Close(status, Charge::kUsage, usage);
  if (whole_stream_) {
    // An answer in hand completes at once (the exchange finishes it before anything else can
    // happen); were it ever cut, the caller would get what came and a cut, as from a trickling
    // stream.
    if (outcome == UpstreamOutcome::kComplete) {
      whole_events_.append(last_event);
      responder_->SendStream(200, StreamHeaders(), StreamType(), admission_.rate_limits.Lines(),
                             std::move(whole_events_));
    } else {
      BeginStream();
      if (!whole_events_.empty()) {
        responder_->WriteChunk(std::move(whole_events_), [keep = responder_](bool) {});
      }
    }
    responder_.reset();
    return;
  }
  if (outcome == UpstreamOutcome::kComplete) {
    if (!last_event.empty()) {
      responder_->WriteChunk(std::move(last_event), [keep = responder_](bool) {});
    }
    responder_->EndStream();
  }
  // Without EndStream, letting go of the responder cuts the connection: the caller sees the
  // stream end without its last chunk, the only way HTTP/1.1 can say it broke.
  responder_.reset();
}

std::string ModelCall::TakeUnterminatedEvent() {
  std::string_view pending = splitter_.Pending();
  while (!pending.empty() && (pending.back() == '\n' || pending.back() == '\r')) {
    pending.remove_suffix(1);
  }
  std::string out;
  if (pending.empty()) return out;
  std::string event(pending);
  event.append("\n\n");
  AppendEvent(event, &out);
  RedactProviderKey(&out, 0, "stream event");
  relayed_ = relayed_ || !out.empty();
  return out;
}

void ModelCall::FailBeforeAnswer(UpstreamOutcome outcome, std::string_view detail) {
  const std::string& provider = admission_.call.target->provider;
  if (outcome == UpstreamOutcome::kCancelled) {
    const int status = CancelledStatus();
    Close(status, Charge::kRelease, {});
    if (!client_gone_ && status == kStatusServerClosed && !streaming_) {
      // Cut at a stop before anything was sent, its client still there: told so.
      http::Response response = http::ErrorResponse(Error::Unavailable(
          "keygate is stopping and cut this call at the end of its drain; send it again"));
      response.header_lines = admission_.rate_limits.Lines();
      responder_->Send(std::move(response));
    }
    responder_.reset();
    return;
  }
  // keygate's own shortage is not counted against the provider (the review: a dashboard
  // summing its errors by provider would still blame it).
  const bool own = outcome == UpstreamOutcome::kOutOfResources;
  if (own) {
    env_.metrics.CountRejection(ToString(outcome));
  } else {
    env_.metrics.CountUpstreamFailure(provider, ToString(outcome));
  }
  env_.log.Warn(own ? "proxy.out_of_resources" : "proxy.upstream_failed",
                {{"request_id", responder_->request_id()},
                 {"provider", provider},
                 {"outcome", ToString(outcome)},
                 {"detail", detail}});
  Error error{ErrorCode::kUpstreamFailed,
              "The upstream provider '" + provider + "' failed (" + std::string(detail) + ").",
              "", "upstream_error"};
  if (own) {
    error = Error::Unavailable("keygate could not open a connection to the upstream provider '" +
                               provider + "' (" + std::string(detail) +
                               "): the gateway is out of file descriptors or memory, not the "
                               "provider at fault; try again shortly");
  }
  if (outcome == UpstreamOutcome::kTimeout) {
    error = Error{ErrorCode::kUpstreamTimeout,
                  "The upstream provider '" + provider + "' did not answer in time (" +
                      std::string(detail) + ").",
                  "", "upstream_timeout"};
  }
  http::Response response = http::ErrorResponse(error);
  response.header_lines = admission_.rate_limits.Lines();
  if (own) response.headers.emplace_back("Retry-After", "1");
  const int status = response.status;
  // spec §3 step 5: a failed or timed-out upstream call releases its reservations (before
  // the answer leaves, see FinishComplete).
  Close(status, Charge::kRelease, {});
  if (!client_gone_) {
    // A stream begun (its head queued, perhaps written) is withdrawn for the answer if it can
    // still be, else cut.
    if (streaming_ && !whole_stream_) {
      responder_->AbortStream(std::move(response));
    } else {
      responder_->Send(std::move(response));
    }
  }
  responder_.reset();
}

int ModelCall::CancelledStatus() const {
  return responder_ && responder_->ClosedByServer() ? kStatusServerClosed : kStatusClientClosed;
}

void ModelCall::RedactProviderKeyDecoded(std::string* text, std::string_view where) {
  // Only the texts searched so (errors and the like), and only those with an escape: rare.
  // Whatever their type: a client parses a text/plain `{...}` as JSON too (the review); an
  // event stream to a plain call (audit T: an error event kept its key).
  std::optional<std::string> plain = DecodedIfItHolds(*text, admission_.call.target->secrets);
  if (plain) *text = std::move(*plain);
  RedactProviderKey(text, 0, where);
}

void ModelCall::RedactProviderKey(std::string* text, size_t from, std::string_view where) {
  const std::vector<std::string>& secrets = admission_.call.target->secrets;
  if (!HoldsAny(std::string_view(*text).substr(from), secrets)) return;
  for (const std::string& secret : secrets) Redact(text, secret);
  NoteEchoedKey(where);
}

void ModelCall::NoteEchoedKey(std::string_view where) {
  env_.log.Warn("proxy.upstream_echoed_key", {{"request_id", responder_->request_id()},
                                              {"provider", admission_.call.target->provider},
                                              {"where", where}});
}

bool ModelCall::Bounded() const {
  const keys::Guardrails& guardrails = admission_.call.key->guardrails;
  return guardrails.credit_limit.has_value() || guardrails.tpm_limit.has_value();
}

TokenUsage ModelCall::EstimateReceived(int64_t completion_bytes) const {
  const WorstCase& worst = admission_.call.worst;
  return TokenUsage{worst.prompt_tokens, std::min(completion_bytes, worst.completion_tokens)};
}

void ModelCall::Close(int status, Charge charge, TokenUsage usage) {
  if (closed_) return;
  closed_ = true;
  const PreparedCall& call = admission_.call;
  const UnixMillis now = env_.clock.NowMs();
  MicroUsd cost = 0;
  if (charge == Charge::kUsage) {
    // For a key with a credit or TPM limit, the reservation bounds the charge (spec §3: spend
    // never passes the limit): the prompt's upper bound and the cap sent upstream bound what a
    // call can really use, so usage above them is an upstream's error, charged at the
    // reservation and logged for the operator. A key without either limit got no cap sent, so
    // its call may rightly pass the catalog's maximum output: charged as reported.
    if (Bounded() && (usage.prompt_tokens > call.worst.prompt_tokens ||
                      usage.completion_tokens > call.worst.completion_tokens)) {
      env_.log.Error("proxy.usage_above_reservation",
                     {{"request_id", responder_->request_id()},
                      {"model", call.model->id},
                      {"prompt_tokens", usage.prompt_tokens},
                      {"completion_tokens", usage.completion_tokens},
                      {"reserved_prompt_tokens", call.worst.prompt_tokens},
                      {"reserved_completion_tokens", call.worst.completion_tokens}});
      usage.prompt_tokens = std::min(usage.prompt_tokens, call.worst.prompt_tokens);
      usage.completion_tokens = std::min(usage.completion_tokens, call.worst.completion_tokens);
    }
    cost = CostOf(*call.model, usage);
    env_.limiter.Settle(admission_.ticket, usage.total(), cost, now);
    if (!Bounded() && usage.total() > call.worst.tokens()) {
      env_.log.Warn("proxy.usage_above_reservation",
                    {{"request_id", responder_->request_id()},
                     {"model", call.model->id},
                     {"tokens", usage.total()},
                     {"reserved_tokens", call.worst.tokens()}});
    }
  } else {
    env_.limiter.Release(admission_.ticket);
    usage = {};
  }
  // Close runs in the same handler as the upstream call's end, when there was one: its time
  // serves (a clock read saved on every call).
  const int64_t end_ns = upstream_end_ns_ ? *upstream_end_ns_ : env_.clock.MonotonicNs();
  // Before the answer's last part leaves (every caller of Close answers after it).
  if (upstream_start_ns_ && upstream_end_ns_) {
    responder_->NoteUpstreamTime(*upstream_end_ns_ - *upstream_start_ns_);
  }
  // The record the call was kept under in flight, with what it really used.
  store::UsageRecord record = Reservation().Record();
  record.prompt_tokens = usage.prompt_tokens;
  record.completion_tokens = usage.completion_tokens;
  record.cost = cost;
  record.status = status;
  record.latency_ms = (end_ns - start_ns_) / kNanosPerMilli;
  record.ttfb_ms = head_ns_ == 0 ? record.latency_ms : (head_ns_ - start_ns_) / kNanosPerMilli;
  record.at = now;
  env_.usage.Append(std::move(record), open_id_);
}

}  // namespace keygate::proxy
