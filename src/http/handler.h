// The seam between the HTTP server (Beast, confined to http/*.cc) and everything that answers
// requests. Handlers see plain structs; no Beast or Asio type crosses this header.
//
// Thread safety: a Request is owned by its handler invocation. A Responder may be called from
// any thread (it runs the call on its connection's thread: at once when already there, else
// posted); Send() or the stream calls are made at most once per request, in order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace keygate::http {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;  // "GET", "POST", ... as sent
  std::string path;    // percent-decoded path of the request target, without the query
  std::string query;   // raw query string without '?', "" if none
  HeaderList headers;  // names lower-cased
  std::string body;
  std::string request_id;  // x-request-id from the client if sane, else generated
  std::string remote_address;
  // The io_context (run by one thread) the connection lives on: a handler that does its own
  // asynchronous I/O for this request (the data plane's upstream call) uses it, so that the
  // whole exchange stays on one thread. Null in requests built by hand (tests).
  boost::asio::io_context* io = nullptr;
  // Filled by the router: values of `{name}` segments of the matched pattern, decoded.
  std::vector<std::pair<std::string, std::string>> path_params;

  // First header with this lower-case name, or "" if absent.
  std::string_view Header(std::string_view lower_name) const;
  // True if the header is present (even empty).
  bool HasHeader(std::string_view lower_name) const;
  // Value of a `{name}` path parameter, or "".
  std::string_view PathParam(std::string_view name) const;
  // The bearer token of the Authorization header, or "" if absent or not "Bearer".
  std::string_view BearerToken() const;
};

// A response's Content-Type, application/json unless set. A value set from a string literal
// (every type keygate writes itself) is held by reference, so that building a response costs
// no allocation for it; any other value (an upstream's) is copied.
class ContentType {
 public:
  ContentType() = default;
  // REQUIRES: `literal` has static storage (a string literal).
  template <size_t N>
  ContentType(const char (&literal)[N]) : literal_(literal, N - 1) {}  // NOLINT: implicit
  explicit ContentType(std::string value) : owned_(std::move(value)), is_owned_(true) {}
  // `value` (another's: an upstream's), held by reference when it is one of the types keygate
  // writes itself (no allocation on the common path), else copied.
  static ContentType Of(std::string_view value);

  std::string_view view() const { return is_owned_ ? std::string_view(owned_) : literal_; }
  operator std::string_view() const { return view(); }  // NOLINT: implicit
  bool empty() const { return view().empty(); }
  // No Content-Type at all.
  void clear() { *this = ContentType(""); }
  friend bool operator==(const ContentType& a, std::string_view b) { return a.view() == b; }

 private:
  std::string_view literal_ = "application/json";
  std::string owned_;
  bool is_owned_ = false;
};

struct Response {
  int status = 200;
  ContentType content_type;
  std::string body;
  HeaderList headers;  // extra headers (Retry-After, x-ratelimit-*, ...)
  // More extra headers, already formatted ("name: value\r\n" each) and written as they are:
  // for headers keygate renders itself on every call (no list to build and check). Only
  // valid names and values, never one the server sets itself (Content-Length, Date, ...).
  std::string header_lines;
};

// How the response goes back. Obtained by a handler, possibly kept beyond the handler's return
// (the data plane answers asynchronously).
class Responder {
 public:
  virtual ~Responder() = default;
  // Sends a complete response. Call once.
  virtual void Send(Response response) = 0;
  // Starts a chunked streaming response (Server-Sent Events by default). `header_lines` as
  // Response::header_lines.
  virtual void BeginStream(int status, HeaderList headers,
                           ContentType content_type = "text/event-stream",
                           std::string header_lines = {}) = 0;
  // Queues `data` to the client. `on_written(true)` once written, `(false)` if the client is
  // gone; called on an io thread. REQUIRES: BeginStream() called, EndStream() not yet.
  virtual void WriteChunk(std::string data, std::function<void(bool ok)> on_written) = 0;
  // Finishes the stream (last chunk). The connection may then serve the next request.
  virtual void EndStream() = 0;
  // A whole stream at once, for one whose every event is in hand: what BeginStream(), `events`
  // as one chunk (none if empty) and EndStream() send. Call instead of the three: the server's
  // responder sends it as one answer framed by its length (Content-Length), in one write; this
  // default makes the three calls.
  virtual void SendStream(int status, HeaderList headers, ContentType content_type,
                          std::string header_lines, std::string events) {
    BeginStream(status, std::move(headers), std::move(content_type), std::move(header_lines));
    if (!events.empty()) WriteChunk(std::move(events), {});
    EndStream();
  }
  // Ends a stream that broke before its end (an upstream that failed): if nothing of it has
  // gone out yet (its head still waits to be written), `instead` is sent in its place, a
  // complete answer; else the connection is cut, the only way HTTP/1.1 can say a stream broke
  // (as releasing the responder without EndStream() does, which is what this default does).
  // REQUIRES: BeginStream() called, EndStream() not.
  virtual void AbortStream(Response /*instead*/) {}
  // True once keygate itself cut the exchange (the drain's deadline at a stop, a second
  // signal), false while not or when the client left: read in OnClientGone's callback, to tell
  // the two.
  virtual bool ClosedByServer() const { return false; }
  // True while an answer can still reach the client: in OnClientGone's callback, false when the
  // client left or the connection was closed, true when keygate cuts a call that has sent
  // nothing yet at a stop (the connection is kept for its answer: see OnClientGone).
  virtual bool CanStillAnswer() const { return false; }
  // `cb` runs once (on an io thread) if the client disconnects before the response completes,
  // or when keygate cuts the call at a stop (then ClosedByServer(); and if nothing of the
  // answer has gone out yet, CanStillAnswer(): the handler is to end the call and answer, or
  // send the answer it already has, after which the connection closes).
  virtual void OnClientGone(std::function<void()> cb) = 0;
  // Says how long (nanoseconds) the answer waited on an upstream call, so that the server can
  // tell its own share of the request's time (keygate_proxy_overhead_seconds, the access log's
  // overhead_us): call before the answer's last part. This default ignores it.
  virtual void NoteUpstreamTime(int64_t /*nanoseconds*/) {}
  // The request's id (for logs and x-request-id).
  virtual const std::string& request_id() const = 0;
};

using Handler = std::function<void(Request& request, std::shared_ptr<Responder> responder)>;

}  // namespace keygate::http
