// Session lifecycle and the read side: waiting for a request, parsing it under the header and
// body limits, routing it and handing it to its handler. The write side is session_write.cc.
#include "http/session.h"

#include <algorithm>
#include <cstring>
#include <boost/beast/core/string.hpp>
#include <boost/url/parse.hpp>
#include <exception>
#include <random>
#include <utility>

#include "common/ascii.h"
#include "common/secret_shape.h"
#include "http/error_response.h"
#include "http/message_scan.h"
#include "http/read_readiness.h"

namespace keygate::http::internal {

namespace {

constexpr uint32_t kMaxHeaderBytes = 32 * 1024;
// Pipelined bytes buffered while a response is outstanding; past this the session stops
// reading (and stops noticing a disconnect) until the response is done.
constexpr size_t kMaxPipelinedBytes = 64 * 1024;
constexpr size_t kReadChunkBytes = 16 * 1024;
// After a response that closes the connection, input is discarded for this long so that the
// client reads the response instead of a reset (e.g. a 413 sent before the body was read).
constexpr std::chrono::seconds kLingerTimeout{2};
constexpr size_t kMaxLingerBytes = 64 * 1024 * 1024;
constexpr size_t kMaxRequestIdLength = 128;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::mt19937_64& RequestIdRng() {
  // Request ids are correlation handles, not secrets: a per-thread PRNG is enough.
  thread_local std::mt19937_64 rng = [] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device()};
    return std::mt19937_64(seed);
  }();
  return rng;
}

bool IsRequestIdChar(char c) {
  return IsAsciiAlnum(c) || c == '.' || c == '_' || c == '-';
}

// Splits a request target into its raw (still percent-encoded) path and raw query. Accepts
// origin-form ("/a?b") and absolute-form ("http://host/a?b", RFC 9112 §3.2.2).
// *raw_path views `target` (or a literal).
bool SplitTarget(std::string_view target, std::string_view* raw_path, std::string* query) {
  if (!target.empty() && target.front() == '/') {
    const size_t question = target.find('?');
    *raw_path = target.substr(0, question);
    if (question != std::string_view::npos) *query = target.substr(question + 1);
    return true;
  }
  auto url = boost::urls::parse_absolute_uri(target);
  if (!url) return false;
  const std::string_view path = url->encoded_path();  // views target
  *raw_path = path.empty() ? std::string_view("/") : path;
  *query = std::string(url->encoded_query());
  return true;
}

// The decoded path of a target, for logs only (never the query).
// The method as the access log and the metrics name it: a standard one as sent, anything else
// "other". A method is whatever a client puts before the first space (up to the header limit):
// as a metrics label it would grow the series without bound, and it may hold a secret.
std::string_view MethodLabel(std::string_view method) {
  constexpr std::string_view kStandard[] = {"GET",     "POST",  "HEAD",    "PUT",  "PATCH",
                                            "DELETE",  "OPTIONS", "TRACE", "CONNECT"};
  for (std::string_view known : kStandard) {
    if (method == known) return known;
  }
  return "other";
}

// What is wrong with the fields of `request` (its header names lower-cased) that must come
// once, or nullptr: HTTP/1.1 needs exactly one Host (RFC 9112 §3.2); and a credential comes
// once (Authorization is no list, RFC 9110 §5.3: a proxy or firewall in front that checked one
// of two would have checked another credential than keygate's).
const char* SingleFieldProblem(const Request& request, int version) {
  int hosts = 0;
  int credentials = 0;
  for (const auto& [name, value] : request.headers) {
    hosts += name == "host" ? 1 : 0;
    credentials += name == "authorization" ? 1 : 0;
  }
  if (version >= 11 && hosts != 1) {
    return "Malformed HTTP request: HTTP/1.1 needs exactly one Host header";
  }
  if (credentials > 1) return "Malformed HTTP request: more than one Authorization header";
  return nullptr;
}

std::string LogPath(std::string_view target) {
  std::string_view raw = target.substr(0, target.find('?'));
  return PercentDecode(raw).value_or(std::string(raw));
}

}  // namespace

// The Responder a handler gets: every call runs on the session's thread (at once when made
// there), which checks that the call fits the state of the exchange `seq`.
class ResponderImpl final : public Responder {
 public:
  ResponderImpl(std::shared_ptr<Session> session, uint64_t seq, std::string request_id)
      : session_(std::move(session)), seq_(seq), request_id_(std::move(request_id)) {}

  // A handler that lets go of its responder without answering gets a 500 for its client
  // instead of a connection that hangs.
  ~ResponderImpl() override {
    session_->Run([seq = seq_](Session& s) { s.ResponderReleased(seq); });
  }

  // Responder
  void Send(Response response) override {
    session_->Run([seq = seq_, response = std::move(response)](Session& s) mutable {
      s.SendResponse(seq, std::move(response));
    });
  }
  void BeginStream(int status, HeaderList headers, ContentType content_type,
                   std::string header_lines) override {
    session_->Run([seq = seq_, status, headers = std::move(headers),
                    content_type = std::move(content_type),
                    header_lines = std::move(header_lines)](Session& s) mutable {
      s.BeginStream(seq, status, std::move(headers), std::move(content_type),
                    std::move(header_lines));
    });
  }
  void WriteChunk(std::string data, std::function<void(bool ok)> on_written) override {
    session_->Run([seq = seq_, data = std::move(data),
                    on_written = std::move(on_written)](Session& s) mutable {
      s.WriteChunk(seq, std::move(data), std::move(on_written));
    });
  }
  void EndStream() override {
    session_->Run([seq = seq_](Session& s) { s.EndStream(seq); });
  }
  void SendStream(int status, HeaderList headers, ContentType content_type,
                  std::string header_lines, std::string events) override {
    session_->Run([seq = seq_, status, headers = std::move(headers),
                    content_type = std::move(content_type),
                    header_lines = std::move(header_lines),
                    events = std::move(events)](Session& s) mutable {
      s.SendStream(seq, status, std::move(headers), std::move(content_type),
                   std::move(header_lines), std::move(events));
    });
  }
  // Read on the session's thread (where OnClientGone's callback runs).
  bool ClosedByServer() const override {
    return session_->server_closed_ || (session_->cut_at_stop_ && !session_->client_gone_);
  }
  bool CanStillAnswer() const override { return session_->Writable(); }
  void AbortStream(Response instead) override {
    session_->Run([seq = seq_, instead = std::move(instead)](Session& s) mutable {
      s.AbortStream(seq, std::move(instead));
    });
  }
  void OnClientGone(std::function<void()> cb) override {
    session_->Run([seq = seq_, cb = std::move(cb)](Session& s) mutable {
      s.SetClientGoneCallback(seq, std::move(cb));
    });
  }
  void NoteUpstreamTime(int64_t nanoseconds) override {
    session_->Run([seq = seq_, nanoseconds](Session& s) { s.NoteUpstreamTime(seq, nanoseconds); });
  }
  const std::string& request_id() const override { return request_id_; }

  // The handler threw: answer 500 if nothing was sent yet, else cut the stream.
  void Fail() {
    session_->Run([seq = seq_](Session& s) { s.HandlerFailed(seq); });
  }

 private:
  std::shared_ptr<Session> session_;
  const uint64_t seq_;
  const std::string request_id_;
};

namespace {

// The session's one catch-all (style: a stray exception becomes a logged 500, never a crash).
// Runs on an io thread (kInline) or a blocking-pool thread (kBlocking).
void InvokeHandler(ServerState& state, const Handler& handler, Request& request,
                   const std::shared_ptr<ResponderImpl>& responder) {
  std::string error;
  try {
    handler(request, responder);
    return;
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "non-standard exception";
  }
  state.logger().Error("http.handler_exception", {{"request_id", request.request_id},
                                                  {"method", request.method},
                                                  {"path", PathForLog(request.path,
                                                      state.options().secret_prefixes)},
                                                  {"error", error}});
  responder->Fail();
}

}  // namespace

// ServerState

void ServerState::Register(const std::shared_ptr<Session>& session) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.emplace(session.get(), session);
  active_.fetch_add(1, std::memory_order_relaxed);
}

void ServerState::Unregister(Session* session) {
  std::function<void()> drained;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (sessions_.erase(session) == 0) return;
    active_.fetch_sub(1, std::memory_order_relaxed);
    if (sessions_.empty() && on_drained_) drained = std::exchange(on_drained_, nullptr);
  }
  if (drained) drained();
}

std::vector<std::shared_ptr<Session>> ServerState::Sessions() const {
  std::vector<std::shared_ptr<Session>> live;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& entry : sessions_) {
    if (auto session = entry.second.lock()) live.push_back(std::move(session));
  }
  return live;
}

std::vector<std::shared_ptr<Session>> ServerState::BeginDrain(std::function<void()> on_drained) {
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard<std::mutex> lock(mu_);
    draining_.store(true);
    for (const auto& entry : sessions_) {
      if (auto session = entry.second.lock()) live.push_back(std::move(session));
    }
    if (!sessions_.empty()) on_drained_ = std::exchange(on_drained, nullptr);
  }
  if (on_drained) on_drained();
  return live;
}

void ServerState::MarkStopped() {
  stopped_.store(true);
  std::lock_guard<std::mutex> lock(mu_);
  on_drained_ = nullptr;
}

std::string RequestIdFor(std::string_view client_value,
                         std::span<const std::string> secret_prefixes) {
  const auto secret = [client_value](const std::string& prefix) {
    return !prefix.empty() && client_value.find(prefix) != std::string_view::npos;
  };
  if (!client_value.empty() && client_value.size() <= kMaxRequestIdLength &&
      std::all_of(client_value.begin(), client_value.end(), IsRequestIdChar) &&
      std::none_of(secret_prefixes.begin(), secret_prefixes.end(), secret) &&
      !HoldsSecretShape(client_value)) {
    return std::string(client_value);
  }
  // 64 random bits in 11 base-62 digits: with "req_", 15 characters, which std::string holds
  // without an allocation (the id is copied into the exchange, the responder and the usage
  // record of every call).
  static constexpr char kDigits[] =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  constexpr uint64_t kBase = sizeof kDigits - 1;
  constexpr size_t kPrefix = 4;
  constexpr size_t kLength = kPrefix + 11;
  uint64_t bits = RequestIdRng()();
  std::string id(kLength, '0');
  id.replace(0, kPrefix, "req_");
  for (size_t i = kLength; i > kPrefix; --i, bits /= kBase) id[i - 1] = kDigits[bits % kBase];
  return id;
}

// Session lifecycle

Session::Session(tcp::socket socket, net::io_context& shard, size_t shard_index,
                 ServerState& state)
    : state_(state),
      shard_(shard),
      shard_index_(shard_index),
      executor_(shard.get_executor()),
      socket_(std::move(socket)),
      timer_(shard) {}

Session::~Session() { state_.Unregister(this); }

void Session::Start() {
  state_.Register(shared_from_this());
  beast::error_code ec;
  tcp::endpoint remote = socket_.remote_endpoint(ec);
  if (!ec) remote_address_ = remote.address().to_string();
  // Responses and stream chunks are written whole; Nagle would only delay them.
  socket_.set_option(tcp::no_delay(true), ec);
  net::dispatch(executor_, [self = shared_from_this()] {
    if (self->state_.draining()) return self->Close();
    // Writes are tried at once (WriteNext): they must never block the shard.
    beast::error_code setup_ec;
    self->socket_.non_blocking(true, setup_ec);
    if (setup_ec) {
      self->state_.logger().Warn("http.socket_setup_failed", {{"error", setup_ec.message()}});
      return self->Close();
    }
    WatchPeerHangup(self->socket_);  // lets StartRead() skip doomed reads
    self->SetReadDeadline(std::chrono::seconds(self->state_.options().header_timeout_s));
    self->StartRead();
  });
}

void Session::Shutdown() {
  Run([](Session& s) {
    if (s.phase_ == Phase::kIdle && !s.exchange_) s.Close();
  });
}

void Session::ForceClose(bool forced) {
  Run([forced](Session& s) {
    const bool unanswered =
        s.exchange_ && s.exchange_->state == ResponseState::kAwaiting && s.Writable();
    if (unanswered && (s.exchange_->on_client_gone || !forced)) {
      // Nothing has gone out: the connection is kept for the answer, which closes it (the
      // server is draining). A call that can be cancelled (a model call) is told to end
      // (CanStillAnswer() true) and answers with what it already has or a 503 saying it was
      // cut; it is not answered here, where an answer already on its way would be lost and its
      // client told to send again a call it was charged for. One that cannot be cancelled (a
      // management call waiting on the store) answers when it is done; the server waits a
      // while for it.
      s.cut_at_stop_ = true;
      if (s.exchange_->on_client_gone) {
        std::function<void()> cut = std::exchange(s.exchange_->on_client_gone, nullptr);
        s.RunCallback("on_client_gone", cut);
      }
      return;
    }
    // keygate closes it, unless its client had left already (then it stays the client's 499).
    if (!s.client_gone_) s.server_closed_ = true;
    if (!s.exchange_) return s.Close();
    s.ClientGone();
  });
}

// Reading: one read pending at a time, for the session's whole life.

void Session::StartRead() {
  if (reading_ || closed_) return;
  if (peer_done_sending_) {
    // The client ended its side: nothing more will come, and a read would wait for an event
    // that never comes (asio retries a read that found the end only when the socket signals
    // again; review). Once its answer (and any request it pipelined before) is out, close.
    if (phase_ != Phase::kBusy) Close();
    return;
  }
  // A response is outstanding and enough pipelined bytes wait: stop reading (and stop
  // noticing a disconnect) until the response is done.
  if (phase_ == Phase::kBusy && buffer_.size() >= kMaxPipelinedBytes) return;
  reading_ = true;
  const auto region = buffer_.prepare(kReadChunkBytes);
  read_into_ = static_cast<char*>(region.data());
  socket_.async_read_some(region,
                          [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                            self->OnRead(ec, bytes);
                          });
  // See http/read_readiness.h: with a reactor write pending, this read's completion could be
  // posted behind a newer event, so it must not mark the socket drained.
  read_may_note_drained_ = !async_writing_ && ReadWasQueued(socket_);
}

void Session::OnRead(beast::error_code ec, size_t bytes) {
  reading_ = false;
  if (!ec && read_may_note_drained_ && bytes < kReadChunkBytes) NoteDrained(socket_);
  if (closed_) return;
  if (ec) {
    if (phase_ == Phase::kBusy) {
      // TCP cannot tell a client gone from one only done sending (shutdown(SHUT_WR), a
      // half-close). A handler that acts on its client leaving (a model call: cancelled, as
      // the spec asks) is told. Any other answer is still written, then the connection closes
      // (the next read finds the end again): a management write applied must not lose its
      // answer, a new key's secret shown once (audit Q). To a client gone for good, the write
      // fails, as it would have. Requests it pipelined before are answered too; the last
      // answer says Connection: close (its head still to be written), and StartRead closes
      // once nothing is left.
      if (ec == boost::asio::error::eof && !(exchange_ && exchange_->on_client_gone)) {
        peer_done_sending_ = true;
        // The last request (nothing pipelined behind it) says Connection: close.
        if (exchange_ && buffer_.size() == 0) exchange_->keep_alive = false;
        return;
      }
      return ClientGone();
    }
    if (phase_ == Phase::kLinger) return Close();
    return OnReadError(ec);
  }
  // A request pipelined behind a busy one may have been parsed, and the buffer emptied, while
  // this read was pending: the buffer's write position is back at its start, and committing
  // there would expose old bytes instead of these (the bytes themselves are intact: nothing
  // prepares or reallocates the buffer while a read is pending).
  char* const expected = static_cast<char*>(buffer_.prepare(bytes).data());
  if (expected != read_into_ && bytes > 0) std::memmove(expected, read_into_, bytes);
  buffer_.commit(bytes);
  switch (phase_) {
    case Phase::kBusy:
      return StartRead();
    case Phase::kLinger:
      linger_bytes_ += bytes;
      buffer_.clear();
      if (linger_bytes_ > kMaxLingerBytes) return Close();
      return StartRead();
    case Phase::kIdle:
    case Phase::kHeader:
    case Phase::kBody:
      return Parse();
  }
}

void Session::Parse() {
  if (parsing_) return;
  parsing_ = true;
  const ServerOptions& options = state_.options();
  while (phase_ != Phase::kBusy && phase_ != Phase::kLinger && !closed_ && buffer_.size() > 0) {
    if (!parser_) {
      // RFC 9112 §2.2: empty lines before a request line are ignored (a client may send one
      // after a body; audit Q saw the next request refused).
      const auto* bytes = static_cast<const char*>(buffer_.data().data());
      size_t blank = 0;
      while (blank < buffer_.size() && (bytes[blank] == '\r' || bytes[blank] == '\n')) ++blank;
      buffer_.consume(blank);
      if (buffer_.size() == 0) break;
      if (TakeScannedRequest()) continue;  // a pipelined request may follow
      parser_.emplace(&state_.body_memory());
      parser_->header_limit(kMaxHeaderBytes);
      parser_->body_limit(static_cast<std::uint64_t>(options.max_body_bytes));
      phase_ = Phase::kHeader;
      request_start_ = Clock::now();
    }
    beast::error_code ec;
    const size_t used = parser_->put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec == bhttp::error::need_more) {
      // In a body, only a chunk's size line (with its extensions) or the trailer waits in the
      // buffer to be whole, and Beast bounds neither: both are held to the header's limit
      // (audit Q: 400 MB of trailer from an unauthenticated client was buffered).
      if (phase_ == Phase::kBody && buffer_.size() > kMaxHeaderBytes) {
        ec = bhttp::error::header_limit;
        parsing_ = false;
        return OnReadError(ec);
      }
      break;
    }
    if (ec) {
      parsing_ = false;
      return OnReadError(ec);
    }
    if (phase_ == Phase::kHeader && parser_->is_header_done()) {
      phase_ = Phase::kBody;
      if (!parser_->is_done() && parser_->version() >= 11 &&
          beast::iequals(parser_->request().Header("expect"), "100-continue")) {
        ExpectContinue();
      }
    }
    if (parser_->is_done()) {
      const int version = parser_->version();
      const bool head = parser_->verb() == bhttp::verb::head;
      const bool keep_alive = parser_->keep_alive();
      Request request = parser_->TakeRequest();
      const std::string target = parser_->TakeTarget();
      parser_.reset();
      OnRequest(std::move(request), target, version, head, keep_alive);
      continue;  // a pipelined request may follow (parsed once this one is answered)
    }
    if (used == 0) break;
  }
  parsing_ = false;
  // A request still incomplete gets its deadline now (most arrive whole in one read, and
  // never touch the timer): a header within header_timeout_s of its first byte (of the
  // connection, for the first request), a body that never stalls for idle_timeout_s.
  if (phase_ == Phase::kHeader && requests_served_ > 0) {
    SetReadDeadlineAt(request_start_ + std::chrono::seconds(options.header_timeout_s));
  } else if (phase_ == Phase::kBody) {
    SetReadDeadlineAt(Clock::now() + std::chrono::seconds(options.idle_timeout_s));
  }
  StartRead();
}

void Session::ExpectContinue() {
  // The body fits the limit (a larger Content-Length already failed with body_limit), so
  // invite the client to send it rather than make it wait out its continue timeout. No
  // response is being written while a request is read, so the write queue is idle.
  OutItem item;
  item.tail = kContinue;
  Enqueue(std::move(item));
}

void Session::OnReadError(beast::error_code ec) {
  if (closed_) return;
  if (parser_ && parser_->body_memory_full()) {
    Reject(Error::Unavailable(
        "The server is receiving too many request bodies at once (they may hold " +
        std::to_string(state_.body_memory().limit()) +
        " bytes: limits.max_body_memory_bytes); try again shortly"));
    return;
  }
  if (ec == bhttp::error::body_limit) {
    Reject(Error{ErrorCode::kPayloadTooLarge,
                 "Request body exceeds the limit of " +
                     std::to_string(state_.options().max_body_bytes) + " bytes",
                 {},
                 {}});
    return;
  }
  if (ec == bhttp::error::bad_transfer_encoding) {
    Reject(Error::InvalidArgument(
        "Malformed HTTP request: Transfer-Encoding must be chunked alone, on HTTP/1.1, without "
        "a Content-Length (no other coding is decoded, and the body's end must be known one "
        "way)"));
    return;
  }
  if (ec == bhttp::error::bad_content_length) {
    // Beast's words ("bad Content-Length") for a length it could not read, or one beside a
    // Transfer-Encoding (audit Q: the two cases read alike).
    Reject(Error::InvalidArgument(
        "Malformed HTTP request: Content-Length must be one decimal number, stated once or "
        "alike each time, and never beside a Transfer-Encoding"));
    return;
  }
  if (ec == bhttp::error::header_limit) {
    const std::string what = phase_ == Phase::kBody ? "A chunk's size line or the trailer"
                                                    : "Request header";
    Reject(Error{ErrorCode::kHeaderTooLarge,
                 what + " exceeds the limit of " + std::to_string(kMaxHeaderBytes) + " bytes",
                 {},
                 {}});
    return;
  }
  // A clean close between requests, a client that gave up mid-message, or a socket error:
  // nobody is left to answer.
  bool is_parse_error =
      &ec.category() == &bhttp::make_error_code(bhttp::error::bad_method).category();
  if (!is_parse_error || ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) {
    Close();
    return;
  }
  Reject(Error::InvalidArgument("Malformed HTTP request: " + ec.message()));
}

void Session::Reject(const Error& error) {
  ClearReadDeadline();
  Exchange& exchange = exchange_.emplace();
  exchange.seq = ++next_seq_;
  exchange.start = Clock::now();
  exchange.keep_alive = false;  // the stream may hold unread or unparseable bytes
  exchange.refused_because = error.message;
  if (parser_ && !parser_->target().empty()) {
    // The request line was read (a Content-Length over the limit fails before the head is
    // done): the access line and the metrics name its method and path.
    exchange.method = MethodLabel(parser_->request().method);
    exchange.path = LogPath(parser_->target());
    exchange.version = parser_->version() == 10 ? 10 : 11;
  }
  if (parser_ && parser_->is_header_done()) {
    exchange.request_id = RequestIdFor(parser_->request().Header("x-request-id"),
                                       state_.options().secret_prefixes);
  } else {
    exchange.request_id = RequestIdFor({});
  }
  // The error's shape follows the path, known from the request line on (a Content-Length over
  // the limit fails before the head is done).
  std::string_view raw_path;
  std::string query;
  if (parser_ && SplitTarget(parser_->target(), &raw_path, &query)) {
    exchange.render_error = state_.router().ErrorRendererFor(raw_path);
  } else if (buffer_.size() > 0) {
    // A request line too long for the parser to finish: its start is still in the buffer.
    constexpr size_t kLongestMethod = 16;
    const std::string_view bytes(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    const size_t space = bytes.find(' ');
    if (space != std::string_view::npos && space < kLongestMethod) {
      const std::string_view target = bytes.substr(space + 1);
      exchange.render_error =
          state_.router().ErrorRendererFor(target.substr(0, target.find_first_of(" ?\r")));
    }
  }
  parser_.reset();
  phase_ = Phase::kBusy;
  SendResponse(exchange.seq, RenderError(error));
}

bool Session::TakeScannedRequest() {
  const auto bytes = static_cast<const char*>(buffer_.data().data());
  ScannedMessage scanned;
  if (!ScanRequest(std::string_view(bytes, buffer_.size()),
                   {kMaxHeaderBytes, static_cast<uint64_t>(state_.options().max_body_bytes)},
                   &scanned)) {
    return false;
  }
  request_start_ = Clock::now();
  Request request;
  request.method = scanned.method;
  request.headers = LoweredHeaders(scanned);
  request.body = scanned.body;
  const bool head = scanned.method == "HEAD";
  // The request holds copies of what it needs; the target's view stays valid past consume()
  // (the bytes stay put until the buffer is next prepared, after the request is dispatched).
  buffer_.consume(scanned.size);
  OnRequest(std::move(request), scanned.target, scanned.version, head, scanned.keep_alive);
  return true;
}

void Session::OnRequest(Request request, std::string_view target, int version, bool head,
                        bool keep_alive) {
  ClearReadDeadline();
  phase_ = Phase::kBusy;
  request.remote_address = remote_address_;
  request.request_id =
      RequestIdFor(request.Header("x-request-id"), state_.options().secret_prefixes);
  request.io = &shard_;

  Exchange& exchange = exchange_.emplace();
  exchange.seq = ++next_seq_;
  exchange.method = MethodLabel(request.method);
  exchange.request_id = request.request_id;
  exchange.version = version == 10 ? 10 : 11;
  exchange.head = head;
  // A request pipelined before the client ended its side: the last one says it closes.
  exchange.keep_alive = keep_alive && !(peer_done_sending_ && buffer_.size() == 0);
  exchange.start = request_start_;

  std::string_view raw_path;  // views `target`
  if (!SplitTarget(target, &raw_path, &request.query)) {
    exchange.refused_because = "Malformed request target";
    SendResponse(exchange.seq, ErrorResponse(Error::InvalidArgument(exchange.refused_because)));
    return;
  }
  exchange.render_error = state_.router().ErrorRendererFor(raw_path);
  if (const char* problem = SingleFieldProblem(request, version)) {
    // Logged with its reason and path, as the parser's refusals are (audit DD: a probe without
    // Host left an anonymous 400).
    exchange.refused_because = problem;
    exchange.path = LogPath(target);
    SendResponse(exchange.seq, RenderError(Error::InvalidArgument(problem)));
    return;
  }
  if (raw_path.find('%') == std::string_view::npos) {
    request.path = raw_path;
  } else {
    request.path = PercentDecode(raw_path).value_or(std::string(raw_path));
  }
  // Read by the access log only, which is written at info level (not kept otherwise: a copy
  // per request for nothing under load, where operators run at warn).
  if (state_.logger().Enabled(LogLevel::kInfo)) exchange.path = request.path;
  RouteMatch match = state_.router().Match(request.method, raw_path);
  if (!match.pattern.empty()) exchange.route = match.pattern;  // a 405 counts under its route
  if (!match.ok()) {
    SendResponse(exchange.seq, std::move(match.rejection));
    return;
  }
  request.path_params = std::move(match.path_params);
  Dispatch(match, std::move(request));
}

void Session::Dispatch(const RouteMatch& match, Request request) {
  auto responder =
      std::make_shared<ResponderImpl>(shared_from_this(), exchange_->seq, exchange_->request_id);
  const Handler* handler = match.handler;
  if (match.execution == Execution::kInline) {
    InvokeHandler(state_, *handler, request, responder);
    return;
  }
  net::post(state_.blocking_pool(), [&state = state_, handler, request = std::move(request),
                                     responder = std::move(responder)]() mutable {
    InvokeHandler(state, *handler, request, responder);
  });
}

void Session::AfterExchange(Clock::time_point now) {
  if (closed_) return;
  if (!keep_alive_) return CloseGracefully();
  if (state_.draining()) return Close();
  phase_ = Phase::kIdle;
  SetReadDeadlineAt(now + std::chrono::seconds(state_.options().idle_timeout_s));
  // Bytes of the next request may be waiting already (pipelined).
  Parse();
}

void Session::CloseGracefully() {
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    Close();
    return;
  }
  phase_ = Phase::kLinger;
  buffer_.clear();
  SetReadDeadline(kLingerTimeout);
  StartRead();
}

void Session::Close() {
  if (closed_) return;
  closed_ = true;
  timer_.Cancel();
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

void Session::ClientGone() {
  if (client_gone_) return;
  client_gone_ = true;
  Close();
  if (exchange_ && exchange_->on_client_gone) {
    std::function<void()> callback = std::exchange(exchange_->on_client_gone, nullptr);
    RunCallback("on_client_gone", callback);
  }
}

// Timeouts

void Session::SetReadDeadline(Clock::duration timeout) {
  SetReadDeadlineAt(Clock::now() + timeout);
}

void Session::SetReadDeadlineAt(Clock::time_point deadline) {
  read_deadline_ = deadline;
  ScheduleTimer();
}

void Session::SetWriteDeadline() {
  write_deadline_ = Clock::now() + std::chrono::seconds(state_.options().idle_timeout_s);
  ScheduleTimer();
}

void Session::ScheduleTimer() {
  if (closed_) return;
  timer_.FireBy(std::min(read_deadline_, write_deadline_),
                [self = shared_from_this()](Clock::time_point expiry) {
                  self->timer_.Fired(expiry);
                  self->OnTimer();
                });
}

void Session::OnTimer() {
  if (closed_) return;
  const Clock::time_point now = Clock::now();
  if (write_deadline_ <= now) {
    state_.logger().Warn("http.write_timeout", {{"remote", remote_address_}});
    return ClientGone();
  }
  if (read_deadline_ <= now) {
    // An idle keep-alive connection closing is routine; a request left unfinished (a
    // slowloris, a stalled upload) is worth an operator's line (audit Q: none was written).
    if (phase_ == Phase::kBody || (phase_ == Phase::kHeader && parser_)) {
      state_.logger().Info("http.request_timeout",
                           {{"remote", remote_address_},
                            {"stage", phase_ == Phase::kBody ? "body" : "header"}});
    } else {
      state_.logger().Log(LogLevel::kDebug, "http.read_timeout", {{"remote", remote_address_}});
    }
    return Close();
  }
  ScheduleTimer();
}

}  // namespace keygate::http::internal
