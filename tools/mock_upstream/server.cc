#include "server.h"

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

namespace mock_upstream {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using TlsStream = ssl::stream<tcp::socket>;
using ErrorCode = boost::system::error_code;

constexpr uint64_t kMaxBodyBytes = 64ull * 1024 * 1024;
constexpr uint32_t kMaxHeaderBytes = 64 * 1024;
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(50);
constexpr unsigned kHttp11 = 11;
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(2);
constexpr int kInterimPauseMs = 20;  // between an interim answer and the answer

void AppendNumber(std::string* out, uint64_t value, int base = 10) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value, base);
  out->append(digits, end);
}

// Status line and headers. `content_length` is ignored when `chunked`; with neither (an
// HTTP/1.0 stream) the body ends when the connection closes.
struct Head {
  int status = 200;
  std::string_view content_type;
  std::optional<size_t> content_length;
  bool chunked = false;
  bool event_stream = false;
  bool keep_alive = true;
  unsigned version = kHttp11;
  int retry_after_s = 0;
  std::string_view request_id;  // the request's x-request-id: "mock-" and it is sent back
  std::string_view content_encoding;  // sent as Content-Encoding (the body is not encoded)
  std::string_view echoed_authorization;  // sent back as x-echo-authorization
  std::string_view extra_lines;  // x-mock-extra-headers, as header lines ("Name: value\r\n"...)
};

// x-mock-extra-headers: "Name: value; Name: value" as header lines, each piece trimmed.
std::string ExtraHeaderLines(std::string_view list) {
  std::string lines;
  while (!list.empty()) {
    const std::string_view piece = TakeListItem(&list, ';');
    if (piece.empty()) continue;
    lines.append(piece);
    lines.append("\r\n");
  }
  return lines;
}

void AppendHead(std::string* out, const Head& head) {
  out->append("HTTP/1.1 ");
  AppendNumber(out, static_cast<uint64_t>(head.status));
  out->push_back(' ');
  out->append(http::obsolete_reason(static_cast<http::status>(head.status)));
  out->append("\r\nServer: keygate-mock-upstream\r\n");
  if (!head.content_type.empty()) {
    out->append("Content-Type: ");
    out->append(head.content_type);
    out->append("\r\n");
  }
  // What OpenAI sends beside its answers: its own rate limits (which a gateway must not pass
  // on as the caller's), its processing time and an id of its own (here derived from the
  // request's).
  out->append(
      "openai-processing-ms: 1\r\nx-ratelimit-limit-requests: 10000\r\n"
      "x-ratelimit-remaining-requests: 9999\r\n");
  if (!head.echoed_authorization.empty()) {
    out->append("x-echo-authorization: ");
    out->append(head.echoed_authorization);
    out->append("\r\n");
  }
  out->append(head.extra_lines);
  if (!head.content_encoding.empty()) {
    out->append("Content-Encoding: ");
    out->append(head.content_encoding);
    out->append("\r\n");
  }
  if (!head.request_id.empty()) {
    out->append("x-request-id: mock-");
    out->append(head.request_id);
    out->append("\r\n");
  }
  if (head.chunked) {
    out->append("Transfer-Encoding: chunked\r\n");
  } else if (head.content_length) {
    out->append("Content-Length: ");
    AppendNumber(out, *head.content_length);
    out->append("\r\n");
  }
  if (head.event_stream) out->append("Cache-Control: no-cache\r\n");
  if (head.retry_after_s > 0) {
    out->append("Retry-After: ");
    AppendNumber(out, static_cast<uint64_t>(head.retry_after_s));
    out->append("\r\n");
  }
  if (!head.keep_alive) {
    out->append("Connection: close\r\n");
  } else if (head.version < kHttp11) {
    out->append("Connection: keep-alive\r\n");
  }
  out->append("\r\n");
}

// One HTTP chunk (RFC 9112 §7.1), or the raw bytes when not chunked.
void AppendFramed(std::string* out, std::string_view data, bool chunked) {
  if (!chunked) {
    out->append(data);
    return;
  }
  AppendNumber(out, data.size(), 16);
  out->append("\r\n");
  out->append(data);
  out->append("\r\n");
}

std::optional<std::string_view> FieldOf(const http::request<http::string_body>& request,
                                        std::string_view name) {
  auto it = request.find(name);
  if (it == request.end()) return std::nullopt;
  return std::string_view(it->value().data(), it->value().size());
}

// `text` as it goes inside a JSON string (which the Authorization received needs no escape for);
// with `escaped` every character of it as a \u escape, with `slash` each `/` as `\/` (PHP's
// json_encode does so); JSON allows both, and a client's parser reads the same text.
std::string QuotedForJson(std::string_view text, std::string_view mode) {
  if (mode == "slash") {
    std::string quoted;
    for (const char c : text) quoted += c == '/' ? std::string("\\/") : std::string(1, c);
    return quoted;
  }
  if (mode != "escaped" && mode != "escaped-nan" && mode != "escaped200") {
    return std::string(text);
  }
  std::string quoted;
  char unit[8];
  for (const char c : text) {
    std::snprintf(unit, sizeof unit, "\\u%04x", static_cast<unsigned char>(c));
    quoted += unit;
  }
  return quoted;
}

// One connection, plain (Stream = tcp::socket) or TLS (TlsStream). Runs only on its socket's
// io_context, which one thread runs: no strand.
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  Session(Stream stream, size_t slot, const MockApi& api, Stats& stats)
      : stream_(std::move(stream)),
        timer_(stream_.get_executor()),
        slot_(slot),
        api_(api),
        stats_(stats) {}

  void Start() {
    if constexpr (kTls) {
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](ErrorCode ec) {
                                if (ec) return self->CloseAbortively();
                                self->DoRead();
                              });
    } else {
      DoRead();
    }
  }

 private:
  void DoRead();
  void OnRead(ErrorCode ec);
  // `message` must need no JSON escaping.
  void RespondAndClose(int status, const std::string& message);
  void Record(const http::request<http::string_body>& request);
  void AfterDelay(void (Session::*next)(), int delay_ms);
  void SendInterim(int code);
  void Act();
  void Respond();
  void WriteBodyLater();
  void WriteBody();
  void AfterAnswer();
  void StartStream();
  void WriteSegment();
  void OnSegmentWritten(ErrorCode ec);
  void Hang();
  void CloseGracefully();
  void CloseTcp();
  void CloseAbortively();
  void SendBadChunk();
  void WriteStray();
  void AfterStray();
  // Writes out_ whole, then calls `next` (nothing more if the write fails).
  void WriteOutThen(void (Session::*next)());

  tcp::socket& socket() { return beast::get_lowest_layer(stream_); }

  Stream stream_;
  net::steady_timer timer_;
  size_t slot_;
  const MockApi& api_;
  Stats& stats_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  Reply reply_;
  std::string out_;           // status line and headers, or a whole framed stream
  std::vector<size_t> cuts_;  // stream: end offsets in out_ of each write
  size_t written_ = 0;
  size_t next_cut_ = 0;
  bool keep_alive_ = true;
  bool close_after_stream_ = false;
  unsigned version_ = kHttp11;
  std::string request_id_;     // of the request being answered
  std::string content_type_;  // x-mock-content-type of the request being answered
  std::string content_encoding_;  // x-mock-content-encoding of the request being answered
  std::string echoed_authorization_;  // x-mock-echo-auth: the Authorization received
  std::string extra_lines_;  // x-mock-extra-headers of the request being answered, as lines
  bool stray_after_ = false;  // x-mock-stray-after: a second, unasked answer after this one
  int body_later_ms_ = 0;     // x-mock-body-later-ms: spaces with the head, the body this later
  bool stream_by_length_ = false;  // x-mock-stream-framing: length (a stream framed by length)
  std::array<char, 512> drain_{};
  bool tls_closing_ = false;  // a TLS close_notify is on its way
};

template <class Stream>
void Session<Stream>::DoRead() {
  parser_.emplace();
  parser_->body_limit(kMaxBodyBytes);
  parser_->header_limit(kMaxHeaderBytes);
  http::async_read(stream_, buffer_, *parser_,
                   [self = this->shared_from_this()](ErrorCode ec, size_t) { self->OnRead(ec); });
}

template <class Stream>
void Session<Stream>::OnRead(ErrorCode ec) {
  if (ec == http::error::end_of_stream) return CloseGracefully();
  if (ec == http::error::body_limit || ec == http::error::header_limit) {
    return RespondAndClose(413, "Request too large for the mock upstream.");
  }
  if (ec == net::error::operation_aborted || ec == net::error::eof ||
      ec == net::error::connection_reset || ec == http::error::partial_message) {
    return;  // the client went away
  }
  if (ec) return RespondAndClose(400, "Malformed HTTP request.");
  const http::request<http::string_body>& request = parser_->get();
  keep_alive_ = request.keep_alive();
  version_ = request.version();
  request_id_.assign(FieldOf(request, "x-request-id").value_or(std::string_view()));
  stream_by_length_ = FieldOf(request, "x-mock-stream-framing") == "length";
  content_encoding_.assign(FieldOf(request, "x-mock-content-encoding").value_or(""));
  extra_lines_ = ExtraHeaderLines(FieldOf(request, "x-mock-extra-headers").value_or(""));
  stray_after_ = FieldOf(request, "x-mock-stray-after").has_value();
  body_later_ms_ = 0;
  if (auto later = FieldOf(request, "x-mock-body-later-ms")) {
    std::from_chars(later->data(), later->data() + later->size(), body_later_ms_);
  }
  RequestView view;
  view.method = std::string_view(request.method_string().data(), request.method_string().size());
  view.target = std::string_view(request.target().data(), request.target().size());
  view.body = request.body();
  view.fault = FieldOf(request, "x-mock-fault");
  view.chunks = FieldOf(request, "x-mock-chunks");
  view.chunk_delay_ms = FieldOf(request, "x-mock-chunk-delay-ms");
  view.usage = FieldOf(request, "x-mock-usage");
  view.ignore_stream = FieldOf(request, "x-mock-ignore-stream").has_value();
  try {
    api_.Handle(view, &reply_);
  } catch (const std::exception& e) {  // a bug of ours: answer 500 rather than lose the thread
    std::fprintf(stderr, "mock_upstream: handler failed: %s\n", e.what());
    reply_.Clear();
    reply_.status = 500;
    reply_.body = R"({"error":{"message":"mock handler failed","type":"server_error"}})";
  }
  // x-mock-echo-auth: a 401 quoting the Authorization received, in its body and a header (as
  // a careless upstream might), to test that a gateway keeps its key from its callers.
  echoed_authorization_.clear();
  if (const auto echo = FieldOf(request, "x-mock-echo-auth")) {
    echoed_authorization_.assign(FieldOf(request, "authorization").value_or(""));
    reply_.Clear();
    reply_.status = 401;
    reply_.content_type = "application/json";
    reply_.body = R"({"error":{"message":"Incorrect API key provided: )" +
                  QuotedForJson(echoed_authorization_, *echo) +
                  R"(","type":"invalid_request_error","param":)" +
                  (*echo == "escaped-nan" ? "NaN" : "null") + R"(,"code":"invalid_api_key"}})";
    if (*echo == "escaped200") reply_.status = 200;  // an error in a 200, as aggregators send
    if (*echo == "text200") {  // a 200 that is no completion, in plain text
      reply_.status = 200;
      reply_.content_type = "text/plain";
      reply_.body = "upstream says " + echoed_authorization_;
    }
  }
  // x-mock-echo-auth-in-stream: a stream whose first event is an error quoting the
  // Authorization received (a careless upstream's mid-stream error); to a plain request, the
  // same event as a text/event-stream answer.
  if (const auto echo = FieldOf(request, "x-mock-echo-auth-in-stream")) {
    const std::string event =
        R"(data: {"error":{"message":"key )" +
        QuotedForJson(FieldOf(request, "authorization").value_or(""), *echo) +
        (*echo == "escaped-nan" ? R"(","param":NaN}})" : R"("}})") + "\n\n";
    if (reply_.action == Action::kStream) {
      reply_.body.insert(0, event);
      for (size_t& end : reply_.event_ends) end += event.size();
      reply_.event_ends.insert(reply_.event_ends.begin(), event.size());
      ++reply_.content_events;
    } else if (reply_.action == Action::kRespond && reply_.status == 200) {
      reply_.content_type = "text/event-stream";
      // escaped-nan: after an event a strict parser reads, with an escape of its own.
      const std::string before =
          *echo == "escaped-nan" ? R"(data: {"note":"caf\u00e9"})" "\n\n" : "";
      reply_.body = before + event + "data: [DONE]\n\n";
    }
  }
  // x-mock-unterminated: a stream without its [DONE], whose last event (the usage chunk, when
  // asked for) lacks its blank line.
  if (FieldOf(request, "x-mock-unterminated") && reply_.action == Action::kStream &&
      reply_.event_ends.size() >= 2) {
    reply_.event_ends.pop_back();
    reply_.event_ends.back() -= 2;  // "\n\n"
    reply_.body.resize(reply_.event_ends.back());
    reply_.content_events = std::min(reply_.content_events, reply_.event_ends.size());
  }
  // x-mock-content-type replaces the answer's Content-Type ("none": no such header at all).
  if (auto type = FieldOf(request, "x-mock-content-type")) {
    content_type_.assign(*type == "none" ? std::string_view() : *type);
    reply_.content_type = content_type_;
  }
  Record(request);  // before answering, so a client that saw the answer sees the stats
  // x-mock-interim: CODE sends an interim answer (100 Continue, 103 Early Hints) first, then
  // the answer itself a moment later, as its own read.
  if (auto interim = FieldOf(request, "x-mock-interim")) {
    int code = 0;
    std::from_chars(interim->data(), interim->data() + interim->size(), code);
    if (code >= 100 && code <= 199) return SendInterim(code);
  }
  AfterDelay(&Session::Act, reply_.delay_ms);
}

template <class Stream>
void Session<Stream>::SendInterim(int code) {
  out_.assign("HTTP/1.1 ");
  AppendNumber(&out_, static_cast<uint64_t>(code));
  out_.push_back(' ');
  out_.append(http::obsolete_reason(static_cast<http::status>(code)));
  out_.append(code == 103 ? "\r\nLink: </style.css>; rel=preload\r\n\r\n" : "\r\n\r\n");
  net::async_write(stream_, net::buffer(out_), [self = this->shared_from_this()](ErrorCode ec,
                                                                                 size_t) {
    if (ec) return;
    self->AfterDelay(&Session::Act, std::max(self->reply_.delay_ms, kInterimPauseMs));
  });
}

template <class Stream>
void Session<Stream>::RespondAndClose(int status, const std::string& message) {
  reply_.Clear();
  request_id_.clear();
  content_encoding_.clear();
  extra_lines_.clear();
  reply_.status = status;
  reply_.body = R"({"error":{"message":")" + message +
                R"(","type":"invalid_request_error","param":null,"code":null}})";
  keep_alive_ = false;
  Respond();
}

template <class Stream>
void Session<Stream>::Record(const http::request<http::string_body>& request) {
  stats_.Record(slot_, reply_.kind, [&](LastRequest* last) {
    for (const auto& field : request) {
      std::string_view name(field.name_string().data(), field.name_string().size());
      std::string_view value(field.value().data(), field.value().size());
      last->AddHeader(name, value);
      if (field.name() == http::field::authorization) {
        last->has_authorization = true;
        last->authorization.assign(value);
      }
    }
    last->body.assign(request.body());
  });
}

template <class Stream>
void Session<Stream>::AfterDelay(void (Session::*next)(), int delay_ms) {
  if (delay_ms <= 0) return (this->*next)();
  timer_.expires_after(std::chrono::milliseconds(delay_ms));
  timer_.async_wait([self = this->shared_from_this(), next](ErrorCode ec) {
    if (!ec) ((*self).*next)();
  });
}

template <class Stream>
void Session<Stream>::Act() {
  switch (reply_.action) {
    case Action::kRespond:
      return Respond();
    case Action::kStream:
      return StartStream();
    case Action::kClose:
      return CloseAbortively();
    case Action::kHang:
      return Hang();
    case Action::kBadChunk:
      return SendBadChunk();
  }
}

// x-mock-stray-after: a whole second answer nobody asked for, in a write (over TLS, a record)
// of its own right after the answer: a broken upstream a client must not read as its next
// request's answer.
template <class Stream>
void Session<Stream>::WriteStray() {
  stray_after_ = false;
  out_.assign("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n"
              "\"STRAY!\"\n");
  WriteOutThen(&Session::AfterStray);
}

template <class Stream>
void Session<Stream>::AfterStray() {
  stats_.CountStray(slot_);  // written whole: on loopback, at the client already
  DoRead();
}

template <class Stream>
void Session<Stream>::WriteOutThen(void (Session::*next)()) {
  net::async_write(stream_, net::buffer(out_),
                   [self = this->shared_from_this(), next](ErrorCode ec, size_t) {
                     if (!ec) ((*self).*next)();
                   });
}

template <class Stream>
void Session<Stream>::SendBadChunk() {
  out_.clear();
  AppendHead(&out_, {.status = 200,
                     .content_type = "text/event-stream",
                     .content_length = std::nullopt,
                     .chunked = true,
                     .event_stream = true,
                     .keep_alive = false,
                     .version = version_,
                     .retry_after_s = 0,
                     .request_id = request_id_,
                     .content_encoding = {},
                     .echoed_authorization = {},
                     .extra_lines = {}});
  out_.append("zz\r\n");  // not a chunk size
  WriteOutThen(&Session::CloseGracefully);
}

// x-mock-body-later-ms: MS sends the head with a few spaces of the body (JSON allows them), and
// the rest MS ms later: an answer its client reads in two parts, the first all spaces.
constexpr std::string_view kLeadingSpaces = " \n ";

template <class Stream>
void Session<Stream>::Respond() {
  const bool later = body_later_ms_ > 0;
  out_.clear();
  AppendHead(&out_, {.status = reply_.status,
                     .content_type = reply_.content_type,
                     .content_length = reply_.body.size() + (later ? kLeadingSpaces.size() : 0),
                     .keep_alive = keep_alive_,
                     .version = version_,
                     .retry_after_s = reply_.retry_after_s,
                     .request_id = request_id_,
                     .content_encoding = content_encoding_,
                     .echoed_authorization = echoed_authorization_,
                     .extra_lines = extra_lines_});
  if (later) {
    out_.append(kLeadingSpaces);
    return WriteOutThen(&Session::WriteBodyLater);
  }
  std::array<net::const_buffer, 2> buffers = {net::buffer(out_), net::buffer(reply_.body)};
  net::async_write(stream_, buffers, [self = this->shared_from_this()](ErrorCode ec, size_t) {
    if (!ec) self->AfterAnswer();
  });
}

template <class Stream>
void Session<Stream>::WriteBodyLater() {
  AfterDelay(&Session::WriteBody, body_later_ms_);
}

template <class Stream>
void Session<Stream>::WriteBody() {
  out_.assign(reply_.body);
  WriteOutThen(&Session::AfterAnswer);
}

template <class Stream>
void Session<Stream>::AfterAnswer() {
  if (!keep_alive_) return CloseGracefully();
  if (stray_after_) return WriteStray();
  DoRead();
}

// Frames every event into out_ up front; cuts_ marks where to pause for chunk_delay_ms.
// With x-mock-stream-framing: length (HTTP/1.1, no reset), the events are one body framed by
// Content-Length instead of chunks, as a static server would send them.
template <class Stream>
void Session<Stream>::StartStream() {
  bool reset = reply_.reset_mid_stream;
  const bool by_length = stream_by_length_ && !reset && version_ >= kHttp11;
  bool chunked = version_ >= kHttp11 && !by_length;
  close_after_stream_ = reset || !keep_alive_ || (!chunked && !by_length);
  out_.clear();
  cuts_.clear();
  size_t events =
      reset ? std::min(kResetAfterContentEvents, reply_.content_events) : reply_.event_ends.size();
  std::optional<size_t> length;
  if (by_length) length = events == 0 ? 0 : reply_.event_ends[events - 1];
  AppendHead(&out_, {.status = reply_.status,
                     .content_type = reply_.content_type,
                     .content_length = length,
                     .chunked = chunked,
                     .event_stream = true,
                     .keep_alive = !close_after_stream_,
                     .version = version_,
                     .request_id = request_id_,
                     .content_encoding = content_encoding_,
                     .echoed_authorization = echoed_authorization_,
                     .extra_lines = extra_lines_});
  size_t begin = 0;
  std::string_view body = reply_.body;
  for (size_t i = 0; i < events; ++i) {
    AppendFramed(&out_, body.substr(begin, reply_.event_ends[i] - begin), chunked);
    begin = reply_.event_ends[i];
    bool more_content = i + 1 < reply_.content_events && i + 1 < events;
    if (more_content && reply_.chunk_delay_ms > 0) cuts_.push_back(out_.size());
  }
  if (chunked && !reset) out_.append("0\r\n\r\n");  // reset: no terminating chunk, by design
  cuts_.push_back(out_.size());
  written_ = 0;
  next_cut_ = 0;
  WriteSegment();
}

template <class Stream>
void Session<Stream>::WriteSegment() {
  net::async_write(
      stream_, net::buffer(out_.data() + written_, cuts_[next_cut_] - written_),
      [self = this->shared_from_this()](ErrorCode ec, size_t) { self->OnSegmentWritten(ec); });
}

template <class Stream>
void Session<Stream>::OnSegmentWritten(ErrorCode ec) {
  if (ec) return;  // the client went away mid-stream
  written_ = cuts_[next_cut_++];
  if (next_cut_ < cuts_.size()) return AfterDelay(&Session::WriteSegment, reply_.chunk_delay_ms);
  if (close_after_stream_) return CloseGracefully();
  DoRead();
}

// Answers nothing, but keeps reading so that the session ends when the client hangs up.
template <class Stream>
void Session<Stream>::Hang() {
  stream_.async_read_some(net::buffer(drain_), [self = this->shared_from_this()](ErrorCode ec,
                                                                                 size_t) {
    if (ec) return self->CloseGracefully();
    self->Hang();
  });
}

// FIN after everything written: data already sent is guaranteed to arrive. Over TLS, a
// close_notify first, so that a body that ends with the connection is not taken as cut.
template <class Stream>
void Session<Stream>::CloseGracefully() {
  if constexpr (kTls) {
    if (!tls_closing_) {
      tls_closing_ = true;
      timer_.expires_after(kTlsShutdownTimeout);  // a peer that never answers the close_notify
      timer_.async_wait([self = this->shared_from_this()](ErrorCode ec) {
        if (!ec) self->CloseAbortively();
      });
      stream_.async_shutdown([self = this->shared_from_this()](ErrorCode) {
        self->timer_.cancel();
        self->tls_closing_ = false;
        self->CloseTcp();
      });
      return;
    }
  }
  CloseTcp();
}

template <class Stream>
void Session<Stream>::CloseTcp() {
  ErrorCode ignored;
  socket().shutdown(tcp::socket::shutdown_both, ignored);
  socket().close(ignored);
}

// RST: linger 0 discards anything unsent, which is nothing here.
template <class Stream>
void Session<Stream>::CloseAbortively() {
  ErrorCode ignored;
  socket().set_option(net::socket_base::linger(true, 0), ignored);
  socket().close(ignored);
}

}  // namespace

struct Server::Impl {
  Impl(const Options& options, const MockApi& api, Stats& stats);
  void DoAccept();
  void OnAccept(ErrorCode ec, size_t slot, tcp::socket socket);
  void RunContext(size_t index);

  const MockApi& api;
  Stats& stats;
  std::optional<ssl::context> tls;  // set: serve HTTPS
  std::vector<std::unique_ptr<net::io_context>> contexts;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  tcp::acceptor acceptor;
  net::signal_set signals;
  net::steady_timer accept_retry;
  size_t next_slot = 0;
};

namespace {

std::vector<std::unique_ptr<net::io_context>> MakeContexts(size_t count) {
  std::vector<std::unique_ptr<net::io_context>> contexts;
  for (size_t i = 0; i < count; ++i) contexts.push_back(std::make_unique<net::io_context>(1));
  return contexts;
}

// An IP literal as is; a name ("localhost") through the resolver, first address wins.
tcp::endpoint ResolveListen(net::io_context& context, const Options& options) {
  ErrorCode ec;
  net::ip::address address = net::ip::make_address(options.host, ec);
  if (!ec) return {address, options.port};
  tcp::resolver resolver(context);
  auto results = resolver.resolve(options.host, std::to_string(options.port));  // throws
  if (results.empty()) throw std::runtime_error("no address for " + options.host);
  return results.begin()->endpoint();
}

}  // namespace

Server::Impl::Impl(const Options& options, const MockApi& api_in, Stats& stats_in)
    : api(api_in),
      stats(stats_in),
      contexts(MakeContexts(Server::ThreadCount(options))),
      acceptor(*contexts[0]),
      signals(*contexts[0], SIGINT, SIGTERM),
      accept_retry(*contexts[0]) {
  if (!options.tls_cert.empty()) {
    tls.emplace(ssl::context::tls_server);
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3);
    tls->use_certificate_chain_file(options.tls_cert);  // throws, with the file's problem
    tls->use_private_key_file(options.tls_key, ssl::context::pem);
  }
  for (auto& context : contexts) guards.push_back(net::make_work_guard(*context));
  tcp::endpoint endpoint = ResolveListen(*contexts[0], options);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(net::socket_base::max_listen_connections);
}

void Server::Impl::DoAccept() {
  size_t slot = next_slot;
  next_slot = (next_slot + 1) % contexts.size();
  // The new socket belongs to context `slot`, so its session runs on that thread only.
  acceptor.async_accept(*contexts[slot], [this, slot](ErrorCode ec, tcp::socket socket) {
    OnAccept(ec, slot, std::move(socket));
  });
}

void Server::Impl::OnAccept(ErrorCode ec, size_t slot, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
  if (ec) {  // e.g. out of file descriptors: back off instead of spinning
    std::fprintf(stderr, "mock_upstream: accept failed: %s\n", ec.message().c_str());
    accept_retry.expires_after(kAcceptRetryDelay);
    accept_retry.async_wait([this](ErrorCode wait_ec) {
      if (!wait_ec) DoAccept();
    });
    return;
  }
  ErrorCode ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  stats.CountConnection(slot);
  if (tls) {
    auto session =
        std::make_shared<Session<TlsStream>>(TlsStream(std::move(socket), *tls), slot, api, stats);
    net::post(*contexts[slot], [session] { session->Start(); });
  } else {
    auto session = std::make_shared<Session<tcp::socket>>(std::move(socket), slot, api, stats);
    net::post(*contexts[slot], [session] { session->Start(); });
  }
  DoAccept();
}

void Server::Impl::RunContext(size_t index) {
  for (;;) {
    try {
      contexts[index]->run();
      return;
    } catch (const std::exception& e) {  // keep serving: one bad handler must not kill a thread
      std::fprintf(stderr, "mock_upstream: io thread %zu: %s\n", index, e.what());
    }
  }
}

Server::Server(const Options& options, const MockApi& api, Stats& stats) {
  try {
    impl_ = std::make_unique<Impl>(options, api, stats);
  } catch (const boost::system::system_error& e) {  // keep the operator's line short
    throw std::runtime_error(e.code().message());
  }
}

Server::~Server() = default;

uint16_t Server::port() const { return impl_->acceptor.local_endpoint().port(); }

std::string Server::address() const {
  tcp::endpoint endpoint = impl_->acceptor.local_endpoint();
  std::string host = endpoint.address().to_string();
  if (endpoint.address().is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(endpoint.port());
}

size_t Server::ThreadCount(const Options& options) {
  if (options.threads > 0) return static_cast<size_t>(options.threads);
  return std::max(1u, std::thread::hardware_concurrency());
}

void Server::Run() {
  impl_->signals.async_wait([this](ErrorCode ec, int) {
    if (!ec) Stop();
  });
  impl_->DoAccept();
  std::vector<std::thread> threads;
  for (size_t i = 1; i < impl_->contexts.size(); ++i) {
    threads.emplace_back([this, i] { impl_->RunContext(i); });
  }
  impl_->RunContext(0);
  for (std::thread& thread : threads) thread.join();
}

void Server::Stop() {
  for (auto& context : impl_->contexts) context->stop();
}

}  // namespace mock_upstream
