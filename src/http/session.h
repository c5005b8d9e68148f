// Private to src/http/*.cc (includes Beast): the state shared by a server's listener and
// sessions, and the Session, which owns one client connection.
//
// A Session lives on one shard: an io_context run by a single thread, so its handlers never
// run concurrently and need no strand. It keeps exactly one read pending on its socket for its
// whole life (a continuous reader): bytes are fed to a request parser; a complete request is
// routed and handed to its handler inline or on the blocking pool. While the response is
// outstanding the same read keeps going, buffering pipelined bytes (up to kMaxPipelinedBytes)
// and noticing a client that disconnects (the handler's OnClientGone callback fires). The next
// request is parsed only once the response is written, so pipelined requests are answered in
// order. Writes are coalesced: everything queued when a write starts goes out in one gather
// write, made at once on the non-blocking socket; only what the socket does not take goes
// through the reactor.
//
// Timeouts use one LazyTimer per session and two deadlines (read and write), moved without
// touching the timer: it is re-armed only when a deadline moves earlier than its expiry, and
// when it fires before the current deadline it simply waits again.
//
// Thread safety: ServerState is safe from any thread. A Session's private state is touched
// only on its shard's thread; its public methods and the Responder may be called from any
// thread (they run the work at once when already on that thread, else post it there).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/lazy_timer.h"
#include "common/log.h"
#include "common/status.h"
#include "http/beast.h"
#include "http/handler.h"
#include "http/metrics.h"
#include "http/request_parser.h"
#include "http/router.h"
#include "http/server.h"

namespace keygate::http::internal {

class Session;

// What a Server shares with its listener and sessions. Owned by Server::Impl, which outlives
// every Session.
class ServerState {
 public:
  ServerState(const ServerOptions& options, const Router& router, Logger& logger,
              HttpMetrics& metrics)
      : options_(options),
        router_(router),
        logger_(logger),
        metrics_(metrics),
        // A body of the largest size always fits alone.
        body_memory_(std::max(options.max_body_memory_bytes, options.max_body_bytes)) {}

  const ServerOptions& options() const { return options_; }
  const Router& router() const { return router_; }
  Logger& logger() const { return logger_; }
  HttpMetrics& metrics() const { return metrics_; }
  // The memory held by the bodies being received, on every connection.
  BodyMemory& body_memory() { return body_memory_; }
  // REQUIRES: set_blocking_pool() was called (Run() does so before serving).
  net::thread_pool& blocking_pool() const { return *blocking_pool_; }
  void set_blocking_pool(net::thread_pool* pool) { blocking_pool_ = pool; }

  // Session registry: a session registers when it starts and unregisters in its destructor.
  void Register(const std::shared_ptr<Session>& session);
  void Unregister(Session* session);
  size_t active() const { return active_.load(std::memory_order_relaxed); }
  // The sessions alive now (the ones not already being destroyed).
  std::vector<std::shared_ptr<Session>> Sessions() const;

  // Marks the server as draining and returns the live sessions. `on_drained` is called once,
  // from whichever thread unregisters the last session (at once if there is none).
  std::vector<std::shared_ptr<Session>> BeginDrain(std::function<void()> on_drained);
  bool draining() const { return draining_.load(); }
  // Marks the io_context as stopped: nothing may be posted to it any more.
  void MarkStopped();
  bool stopped() const { return stopped_.load(); }

 private:
  const ServerOptions& options_;
  const Router& router_;
  Logger& logger_;
  HttpMetrics& metrics_;
  BodyMemory body_memory_;
  net::thread_pool* blocking_pool_ = nullptr;
  mutable std::mutex mu_;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;  // guarded by mu_
  std::function<void()> on_drained_;                               // guarded by mu_
  std::atomic<size_t> active_{0};
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopped_{false};
};

// The status line and header block of a response.
struct ResponseHead {
  // How the body is delimited.
  enum class Framing {
    kContentLength,  // Content-Length: content_length
    kChunked,        // Transfer-Encoding: chunked
    kNone,           // no length (204/304, or an HTTP/1.0 stream ended by closing)
  };
  unsigned version = 11;  // 10 or 11
  int status = 200;
  std::string_view content_type;  // omitted when empty
  const HeaderList* headers = nullptr;
  std::string_view header_lines;  // written as they are (Response::header_lines)
  std::string_view request_id;
  std::string_view date;  // IMF-fixdate for the Date header; omitted when empty
  Framing framing = Framing::kContentLength;
  uint64_t content_length = 0;
  bool keep_alive = true;
};

// Serializes `head` (ending with the blank line). Extra headers that would break framing
// (Content-Length, Transfer-Encoding, Connection, x-request-id) or that are not a valid token
// name with a CR/LF/NUL-free value are left out and their names appended to `dropped`.
std::string SerializeHead(const ResponseHead& head, std::vector<std::string>* dropped);

// The current time as an RFC 9110 IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), for the
// Date header. Formatted at most once per second per thread.
std::string_view HttpDate();

// Returns the client's x-request-id if it is 1..128 characters of [A-Za-z0-9._-] and holds
// none of `secret_prefixes` nor anything shaped as a key's secret part (common/secret_shape.h),
// else a new "req_" + 11 base-62 digits id.
std::string RequestIdFor(std::string_view client_value,
                         std::span<const std::string> secret_prefixes = {});

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `socket` belongs to `shard` (number `shard_index`), which exactly one thread runs.
  Session(tcp::socket socket, net::io_context& shard, size_t shard_index, ServerState& state);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Registers with the ServerState and starts reading. Called once, by the listener.
  void Start();
  // Drain: closes the connection now if it is waiting for a request; otherwise it closes
  // after the current response (which says Connection: close). Thread-safe.
  void Shutdown();
  // The drain's end: closes the connection now; an outstanding handler is told through
  // OnClientGone. Except, while nothing of the answer has gone out: a handler that registered
  // OnClientGone keeps the connection for its answer (Responder::CanStillAnswer), and unless
  // `forced` (a second signal) so does one that cannot be cancelled (a management call), whose
  // client must learn whether its write was applied. Thread-safe.
  void ForceClose(bool forced);

 private:
  friend class ResponderImpl;

  // Where the connection is in its request cycle.
  enum class Phase {
    kIdle,    // waiting for the first byte of a request
    kHeader,  // part of a request header has arrived
    kBody,    // the header is complete, the body is not
    kBusy,    // a request is being answered; reads only buffer and watch for a disconnect
    kLinger,  // after shutdown(send): discarding input until the client closes
  };
  // Progress of the response to the current request.
  enum class ResponseState {
    kAwaiting,   // the handler has not answered yet
    kWriting,    // a complete response is queued or being written
    kStreaming,  // a streamed response is open
    kEnding,     // the stream's last chunk is queued
  };
  struct Exchange {
    uint64_t seq = 0;
    // For the access log and the metrics; "other" until a request line is read (a line that
    // is none logs and counts as a non-standard method does).
    std::string method = "other";
    std::string path;    // decoded, without query; for the access log (set at info level only)
    std::string_view route = "unmatched";  // the matched pattern, for the metrics
    std::string request_id;
    unsigned version = 11;
    bool head = false;  // HEAD request: headers only
    bool keep_alive = false;
    bool chunked = false;
    ResponseState state = ResponseState::kAwaiting;
    int status = 0;
    uint64_t bytes = 0;  // body bytes queued to the client
    std::chrono::steady_clock::time_point start;
    int64_t upstream_ns = -1;  // the handler's upstream call, when it made one
    // The error shape of the request's path (Router::ErrorRendererFor); nullptr: OpenAI's.
    const ErrorRenderer* render_error = nullptr;
    std::function<void()> on_client_gone;
    // Why the server refused the message itself (Reject): for the access line. Fixed words and
    // numbers, never the request's own bytes.
    std::string refused_because;
  };
  struct OutItem {
    std::string head;  // header block or chunk-size line
    std::string body;
    std::string_view tail;  // chunk terminator (static storage)
    std::function<void(bool ok)> on_written;
    bool completes = false;  // writing it completes the exchange
    bool stream_head = false;  // a stream's head (AbortStream withdraws it while unwritten)
  };
  using Clock = std::chrono::steady_clock;

  // Runs f(*this) on the session's thread: at once when called there and no earlier call is
  // still queued, else posted (keeping the session alive); a no-op once the server stopped.
  template <class F>
  void Run(F&& f);

  // Reading (session.cc).
  void StartRead();
  void OnRead(beast::error_code ec, size_t bytes);
  void Parse();
  void ExpectContinue();
  void OnReadError(beast::error_code ec);
  // A whole request of the common shape at the start of buffer_, read by the scanner
  // (http/message_scan.h) and answered; false leaves the bytes to the Beast parser.
  bool TakeScannedRequest();
  // `target` (the request target as sent) is read before the request is dispatched only.
  void OnRequest(Request request, std::string_view target, int version, bool head,
                 bool keep_alive);
  void Reject(const Error& error);
  // `error` in the current exchange's error shape.
  Response RenderError(const Error& error) const;
  void Dispatch(const RouteMatch& match, Request request);
  void AfterExchange(Clock::time_point now);
  void CloseGracefully();
  void Close();
  void ClientGone();
  // Deadlines: Clock::time_point::max() when none.
  void SetReadDeadline(Clock::duration timeout);
  void SetReadDeadlineAt(Clock::time_point deadline);
  void ClearReadDeadline() { read_deadline_ = Clock::time_point::max(); }
  void SetWriteDeadline();
  void ClearWriteDeadline() { write_deadline_ = Clock::time_point::max(); }
  void ScheduleTimer();
  void OnTimer();

  // Responding (session_write.cc).
  void SendResponse(uint64_t seq, Response response);
  void BeginStream(uint64_t seq, int status, HeaderList headers, ContentType content_type,
                   std::string header_lines);
  void WriteChunk(uint64_t seq, std::string data, std::function<void(bool)> on_written);
  void EndStream(uint64_t seq);
  // A whole stream: one answer framed by Content-Length, through SendResponse.
  void SendStream(uint64_t seq, int status, HeaderList headers, ContentType content_type,
                  std::string header_lines, std::string events);
  void SetClientGoneCallback(uint64_t seq, std::function<void()> callback);
  void NoteUpstreamTime(uint64_t seq, int64_t nanoseconds);
  void HandlerFailed(uint64_t seq);
  void AbortStream(uint64_t seq, Response instead);
  void ResponderReleased(uint64_t seq);
  void AbortExchange(const char* why);
  std::string MakeHead(int status, std::string_view content_type, const HeaderList& headers,
                       std::string_view header_lines, ResponseHead::Framing framing,
                       uint64_t content_length);
  // Queues `item` and starts writing, at once or (`defer`) once the running handler returns.
  void Enqueue(OutItem item, bool defer = false);
  void WriteNext();
  void OnWrite(beast::error_code ec);
  void FailWrites();
  void FinishExchange();
  void LogAccess(Clock::time_point now);
  bool IsCurrent(uint64_t seq) const { return exchange_ && exchange_->seq == seq; }
  bool Writable() const { return !closed_ && !client_gone_; }
  void RunCallback(const char* what, const std::function<void()>& callback);

  ServerState& state_;
  net::io_context& shard_;
  const size_t shard_index_;
  const net::io_context::executor_type executor_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;  // received, not yet parsed
  std::optional<RequestParser> parser_;
  LazyTimer timer_;
  Clock::time_point read_deadline_ = Clock::time_point::max();
  Clock::time_point write_deadline_ = Clock::time_point::max();
  Phase phase_ = Phase::kIdle;
  bool reading_ = false;  // a read is pending on the socket
  // Where the pending read writes: the buffer's write position when it started. Emptying the
  // buffer meanwhile (a consume() of everything, a clear()) moves that position back to the
  // buffer's start, where the read's bytes then do not lie.
  char* read_into_ = nullptr;
  // The pending read waits in the reactor and no reactor write overlapped it: a short read
  // may tell the reactor the socket is drained (http/read_readiness.h).
  bool read_may_note_drained_ = false;
  bool parsing_ = false;  // Parse() is on the stack (it must not re-enter)
  std::optional<Exchange> exchange_;
  std::deque<OutItem> out_;
  std::vector<net::const_buffer> write_buffers_;  // of the write in flight
  size_t in_flight_ = 0;  // items of out_ the write in flight covers
  bool writing_ = false;
  bool eager_writing_ = false;  // WriteNext() is completing a write it made at once
  bool async_writing_ = false;  // an async_write (a reactor operation) is pending
  bool flush_posted_ = false;  // a deferred start of writing is queued
  bool closed_ = false;
  bool client_gone_ = false;
  // The client ended its side (FIN) while its request was being answered, and the handler does
  // not act on its client leaving: the answer is still written (see OnRead).
  bool peer_done_sending_ = false;
  // keygate closed the connection itself (the drain's deadline, a handler's exception): an
  // answer it could not send is logged with its status, not as the client's 499.
  bool server_closed_ = false;
  // keygate cut the exchange at a stop but kept the connection for its answer (ForceClose):
  // ClosedByServer() while the client stays; a client that leaves meanwhile is still its 499.
  bool cut_at_stop_ = false;
  bool keep_alive_ = true;  // read another request once the current exchange finishes
  uint64_t next_seq_ = 0;
  uint64_t requests_served_ = 0;
  size_t linger_bytes_ = 0;
  Clock::time_point request_start_;
  std::string remote_address_;
  std::atomic<int> posted_{0};  // Run() calls posted and not yet run
};

template <class F>
void Session::Run(F&& f) {
  if (state_.stopped()) return;
  // At once only if nothing posted earlier (from another thread) is still waiting: calls
  // reach the session in the order they were made.
  if (executor_.running_in_this_thread() && posted_.load(std::memory_order_acquire) == 0) {
    f(*this);
    return;
  }
  posted_.fetch_add(1, std::memory_order_acq_rel);
  net::post(executor_, [self = shared_from_this(), f = std::forward<F>(f)]() mutable {
    f(*self);
    self->posted_.fetch_sub(1, std::memory_order_acq_rel);
  });
}

}  // namespace keygate::http::internal
