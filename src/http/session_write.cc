// The write side of a Session: complete responses, chunked streams, the one-at-a-time write
// queue, the end of an exchange and its access-log line.
#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>
#include <exception>
#include <iterator>
#include <span>
#include <utility>

#include "common/ascii.h"
#include "common/text_writer.h"
#include "http/error_response.h"
#include "http/session.h"

namespace keygate::http::internal {

namespace {

// nginx's "client closed request": logged when the client left before any status was chosen.
constexpr int kStatusClientClosed = 499;
constexpr std::string_view kLastChunk = "0\r\n\r\n";
constexpr std::string_view kCrLf = "\r\n";
// Items gathered into one write at most (each is up to three buffers).
constexpr size_t kMaxItemsPerWrite = 64;

// RFC 9110 §5.6.2 tchar, as a table: header names are checked on every response.
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) table[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) table[static_cast<unsigned char>(c)] = true;
  return table;
}();

bool IsValidName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!kTokenChars[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

bool IsValidValue(std::string_view value) {
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

// Headers the server owns: a handler's copy would break framing or the request id.
bool IsReserved(std::string_view name, bool has_content_type) {
  switch (name.size()) {
    case 10: return AsciiIEquals(name, "connection");
    case 12: return AsciiIEquals(name, "x-request-id") || (has_content_type && AsciiIEquals(name, "content-type"));
    case 14: return AsciiIEquals(name, "content-length");
    case 17: return AsciiIEquals(name, "transfer-encoding");
    default: return false;
  }
}

void AppendField(TextWriter* out, std::string_view name, std::string_view value) {
  out->append(name).append(": ").append(value).append("\r\n");
}

// "<size in hex>\r\n", the line before a chunk: short enough for std::string's inline buffer.
std::string ChunkSizeLine(size_t size) {
  char line[24];
  char* end = std::to_chars(line, line + sizeof line - 2, size, 16).ptr;
  *end++ = '\r';
  *end++ = '\n';
  return std::string(line, static_cast<size_t>(end - line));
}

Error InternalError() {
  return Error::Internal("The server had an error while processing your request");
}

}  // namespace

std::string_view HttpDate() {
  // The Date header is informational (RFC 9110 §6.6.1) and never drives a decision, so the
  // wall clock is read directly, as log.cc does for log timestamps.
  thread_local std::time_t cached_second = -1;
  thread_local char formatted[40] = {};
  std::time_t now = std::time(nullptr);
  if (now != cached_second) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(formatted, sizeof formatted, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached_second = now;
  }
  return formatted;
}

std::string SerializeHead(const ResponseHead& head, std::vector<std::string>* dropped) {
  // One allocation: the fixed lines fit in kFixedBytes, the rest is counted.
  constexpr size_t kFixedBytes = 256;
  size_t size = kFixedBytes + head.content_type.size() + head.header_lines.size() +
                head.request_id.size();
  if (head.headers != nullptr) {
    for (const auto& [name, value] : *head.headers) size += name.size() + value.size() + 4;
  }
  std::string text;
  TextWriter out(&text, size);
  out.append(head.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  AppendDecimal(head.status, &out);
  out.push_back(' ');
  bhttp::status status = bhttp::int_to_status(static_cast<unsigned>(head.status));
  if (status != bhttp::status::unknown) {
    const auto reason = bhttp::obsolete_reason(status);
    out.append(reason.data(), reason.size());
  }
  out.append("\r\n");
  if (!head.date.empty()) AppendField(&out, "Date", head.date);
  bool has_content_type = !head.content_type.empty() && IsValidValue(head.content_type);
  if (has_content_type) AppendField(&out, "Content-Type", head.content_type);
  if (head.framing == ResponseHead::Framing::kContentLength) {
    out.append("Content-Length: ");
    AppendDecimal(head.content_length, &out);
    out.append("\r\n");
  } else if (head.framing == ResponseHead::Framing::kChunked) {
    AppendField(&out, "Transfer-Encoding", "chunked");
  }
  if (head.headers != nullptr) {
    for (const auto& [name, value] : *head.headers) {
      if (!IsValidName(name) || !IsValidValue(value) || IsReserved(name, has_content_type)) {
        if (dropped != nullptr) dropped->push_back(name);
        continue;
      }
      AppendField(&out, name, value);
    }
  }
  out.append(head.header_lines);
  AppendField(&out, "x-request-id", head.request_id);
  if (head.version >= 11 && !head.keep_alive) AppendField(&out, "Connection", "close");
  if (head.version == 10 && head.keep_alive) AppendField(&out, "Connection", "keep-alive");
  out.append("\r\n");
  out.Finish();
  return text;
}

std::string Session::MakeHead(int status, std::string_view content_type, const HeaderList& headers,
                              std::string_view header_lines, ResponseHead::Framing framing,
                              uint64_t content_length) {
  Exchange& exchange = *exchange_;
  // A draining server tells each client this is its last response on the connection.
  exchange.keep_alive = exchange.keep_alive && !state_.draining();
  ResponseHead head;
  head.version = exchange.version;
  head.status = status;
  head.content_type = content_type;
  head.headers = &headers;
  head.header_lines = header_lines;
  head.request_id = exchange.request_id;
  head.date = HttpDate();
  head.framing = framing;
  head.content_length = content_length;
  head.keep_alive = exchange.keep_alive;
  std::vector<std::string> dropped;
  std::string out = SerializeHead(head, &dropped);
  for (const std::string& name : dropped) {
    state_.logger().Warn("http.header_dropped",
                         {{"request_id", exchange.request_id}, {"header", name}});
  }
  return out;
}

Response Session::RenderError(const Error& error) const {
  const ErrorRenderer* render = exchange_ ? exchange_->render_error : nullptr;
  return render != nullptr ? (*render)(error) : ErrorResponse(error);
}

void Session::SendResponse(uint64_t seq, Response response) {
  if (!IsCurrent(seq)) return;
  Exchange& exchange = *exchange_;
  if (exchange.state != ResponseState::kAwaiting) {
    state_.logger().Warn("http.responder_misuse",
                         {{"request_id", exchange.request_id}, {"call", "Send"}});
    return;
  }
  if (response.status < 200 || response.status > 599) {
    state_.logger().Error("http.bad_status",
                          {{"request_id", exchange.request_id}, {"status", response.status}});
    response = RenderError(InternalError());
  }
  if (response.status >= 400) MaskKeysInText(&response.body, state_.options().secret_prefixes);
  // A client gone on its own got no answer: its access line says 499 (the status left unset).
  if (Writable() || server_closed_) exchange.status = response.status;
  exchange.state = ResponseState::kWriting;
  if (!Writable()) {
    FinishExchange();
    return;
  }
  // RFC 9110 §6.4.1: 204 and 304 never carry content (nor its length).
  bool bodiless = response.status == 204 || response.status == 304;
  OutItem item;
  item.head = MakeHead(
      response.status, bodiless ? std::string_view() : response.content_type, response.headers,
      response.header_lines,
      bodiless ? ResponseHead::Framing::kNone : ResponseHead::Framing::kContentLength,
      response.body.size());
  if (!exchange.head && !bodiless) item.body = std::move(response.body);
  exchange.bytes = item.body.size();
  item.completes = true;
  Enqueue(std::move(item));
}

void Session::BeginStream(uint64_t seq, int status, HeaderList headers, ContentType content_type,
                          std::string header_lines) {
  if (!IsCurrent(seq)) return;
  Exchange& exchange = *exchange_;
  if (exchange.state != ResponseState::kAwaiting) {
    state_.logger().Warn("http.responder_misuse",
                         {{"request_id", exchange.request_id}, {"call", "BeginStream"}});
    return;
  }
  if (status < 200 || status > 599) {
    state_.logger().Error("http.bad_status",
                          {{"request_id", exchange.request_id}, {"status", status}});
    status = HttpStatusFor(ErrorCode::kInternal);
  }
  if (Writable() || server_closed_) exchange.status = status;  // as in SendResponse
  exchange.state = ResponseState::kStreaming;
  if (!Writable()) return;
  exchange.chunked = exchange.version >= 11;
  // HTTP/1.0 has no chunks: the stream's end is the connection's end.
  if (!exchange.chunked) exchange.keep_alive = false;
  OutItem item;
  item.head = MakeHead(
      status, content_type, headers, header_lines,
      exchange.chunked ? ResponseHead::Framing::kChunked : ResponseHead::Framing::kNone, 0);
  item.stream_head = true;
  // The first chunk usually follows in the same handler: they leave in one write.
  Enqueue(std::move(item), /*defer=*/true);
}

void Session::WriteChunk(uint64_t seq, std::string data, std::function<void(bool)> on_written) {
  auto report = [&on_written, this](bool ok) {
    if (on_written) RunCallback("on_written", [&on_written, ok] { on_written(ok); });
  };
  if (!IsCurrent(seq) || exchange_->state != ResponseState::kStreaming) {
    if (IsCurrent(seq)) {
      state_.logger().Warn("http.responder_misuse",
                           {{"request_id", exchange_->request_id}, {"call", "WriteChunk"}});
    }
    report(false);
    return;
  }
  Exchange& exchange = *exchange_;
  if (!Writable()) {
    report(false);
    return;
  }
  // An empty chunk would be read as the end of the stream; HEAD gets no body at all.
  if (data.empty() || exchange.head) {
    report(true);
    return;
  }
  exchange.bytes += data.size();
  OutItem item;
  if (exchange.chunked) {
    item.head = ChunkSizeLine(data.size());
    item.tail = kCrLf;
  }
  item.body = std::move(data);
  item.on_written = std::move(on_written);
  // Not deferred: a chunk right after BeginStream() joins the head's deferred write, and a
  // later one (a stream's next read) goes out at once, without a posted flush and the extra
  // reactor poll it costs.
  Enqueue(std::move(item));
}

void Session::EndStream(uint64_t seq) {
  if (!IsCurrent(seq)) return;
  Exchange& exchange = *exchange_;
  if (exchange.state != ResponseState::kStreaming) {
    state_.logger().Warn("http.responder_misuse",
                         {{"request_id", exchange.request_id}, {"call", "EndStream"}});
    return;
  }
  exchange.state = ResponseState::kEnding;
  if (!Writable()) {
    FinishExchange();
    return;
  }
  OutItem item;
  if (exchange.chunked && !exchange.head) item.tail = kLastChunk;
  item.completes = true;
  Enqueue(std::move(item));
}

void Session::SendStream(uint64_t seq, int status, HeaderList headers, ContentType content_type,
                         std::string header_lines, std::string events) {
  if (!IsCurrent(seq)) return;
  if (exchange_->state != ResponseState::kAwaiting) {
    state_.logger().Warn("http.responder_misuse",
                         {{"request_id", exchange_->request_id}, {"call", "SendStream"}});
    return;
  }
  // Every event is in hand: one answer of known length, framed by Content-Length like any
  // other and sent in one write. A streaming client reads it as it reads chunks (the framing
  // is the transport's), and there is no chunk to frame, nor a last one to queue.
  Response response;
  response.status = status;
  response.content_type = std::move(content_type);
  response.headers = std::move(headers);
  response.header_lines = std::move(header_lines);
  response.body = std::move(events);
  SendResponse(seq, std::move(response));
}

void Session::SetClientGoneCallback(uint64_t seq, std::function<void()> callback) {
  if (!IsCurrent(seq) || !callback) return;
  // Gone already, or cut by keygate at a stop while the handler was not yet cancellable (a
  // model call that waited on the store): told at once.
  if (client_gone_ || server_closed_ || cut_at_stop_) {
    RunCallback("on_client_gone", callback);
    return;
  }
  exchange_->on_client_gone = std::move(callback);
  // Its client ended its side before the handler could be told (see Session::OnRead).
  if (peer_done_sending_) ClientGone();
}

void Session::NoteUpstreamTime(uint64_t seq, int64_t nanoseconds) {
  if (IsCurrent(seq)) exchange_->upstream_ns = std::max<int64_t>(nanoseconds, 0);
}

void Session::HandlerFailed(uint64_t seq) {
  if (!IsCurrent(seq)) return;
  switch (exchange_->state) {
    case ResponseState::kAwaiting:
      SendResponse(seq, RenderError(InternalError()));
      return;
    case ResponseState::kStreaming:
      AbortExchange("handler threw during a stream");
      return;
    case ResponseState::kWriting:
    case ResponseState::kEnding:
      return;  // the response is complete and on its way
  }
}

void Session::ResponderReleased(uint64_t seq) {
  if (!IsCurrent(seq)) return;
  switch (exchange_->state) {
    case ResponseState::kAwaiting:
      // A handler may let go without answering a client that left (a cancelled model call):
      // nothing to send, and SendResponse logs it as 499 (a 503 if keygate cut it at a stop).
      if (Writable()) {
        state_.logger().Error("http.no_response",
                              {{"request_id", exchange_->request_id}, {"route", exchange_->route}});
      }
      SendResponse(seq, RenderError(server_closed_ ? Error::Unavailable("keygate is stopping")
                                                   : InternalError()));
      return;
    case ResponseState::kStreaming:
      AbortExchange("responder released before EndStream");
      return;
    case ResponseState::kWriting:
    case ResponseState::kEnding:
      return;
  }
}

void Session::AbortStream(uint64_t seq, Response instead) {
  if (!IsCurrent(seq) || exchange_->state != ResponseState::kStreaming) return;
  if (Writable()) {
    // Nothing of the stream has gone out while its head waits in the queue, outside the write
    // in flight: the head and what followed it are withdrawn, and `instead` answers.
    const auto unwritten = out_.begin() + static_cast<std::ptrdiff_t>(in_flight_);
    const auto head = std::find_if(unwritten, out_.end(),
                                   [](const OutItem& item) { return item.stream_head; });
    if (head != out_.end()) {
      std::vector<std::function<void(bool)>> callbacks;
      for (auto it = head; it != out_.end(); ++it) {
        if (it->on_written) callbacks.push_back(std::move(it->on_written));
      }
      out_.erase(head, out_.end());
      for (auto& callback : callbacks) RunCallback("on_written", [&callback] { callback(false); });
      Exchange& exchange = *exchange_;
      exchange.state = ResponseState::kAwaiting;
      exchange.chunked = false;
      exchange.bytes = 0;
      return SendResponse(seq, std::move(instead));
    }
  }
  AbortExchange("the stream broke");
}

void Session::AbortExchange(const char* why) {
  if (client_gone_ && !server_closed_) {
    // A handler letting go of a stream whose client left: the client's doing, a 499 in the
    // access line as in the call's usage record, and nothing to warn of (audit S: a 200 and a
    // warning).
    exchange_->status = kStatusClientClosed;
  } else {
    state_.logger().Warn("http.stream_aborted",
                         {{"request_id", exchange_->request_id}, {"reason", why}});
  }
  // The status line is gone already; cutting the connection is the only way to tell the
  // client the stream is incomplete. keygate cut it, not the client (the access line says so),
  // unless the client had left already (a handler lets go of a stream whose caller left).
  exchange_->keep_alive = false;
  if (!client_gone_) server_closed_ = true;
  ClientGone();
  FinishExchange();
}

// The write queue: one write at a time, gathering every item queued when it starts; each
// item's buffers live in the deque until its write completes.

namespace {

// Drops the first `bytes` bytes of `buffers` (what a partial write took).
void DropFront(std::vector<net::const_buffer>& buffers, size_t bytes) {
  auto first = buffers.begin();
  while (first != buffers.end() && bytes >= first->size()) {
    bytes -= first->size();
    ++first;
  }
  buffers.erase(buffers.begin(), first);
  if (bytes > 0 && !buffers.empty()) buffers.front() += bytes;
}

}  // namespace

void Session::Enqueue(OutItem item, bool defer) {
  if (!Writable()) {
    if (item.on_written) RunCallback("on_written", [&item] { item.on_written(false); });
    if (item.completes) FinishExchange();
    return;
  }
  out_.push_back(std::move(item));
  // It joins the write that starts next.
  if (writing_ || flush_posted_) return;
  if (!defer) return WriteNext();
  // Stream pieces: the write starts once the current handler has returned, so that what it
  // queues after this (more chunks, the end) goes out in the same write.
  flush_posted_ = true;
  net::post(executor_, [self = shared_from_this()] {
    self->flush_posted_ = false;
    if (!self->writing_) self->WriteNext();
  });
}

void Session::WriteNext() {
  if (out_.empty()) return;
  if (!Writable()) {
    // Closed while these waited for a posted flush (the client left meanwhile): they can never
    // go out. Failed now, so that their callbacks, which may hold the responder and so this
    // session, are let go and the exchange finishes (audit T: such sessions were never freed,
    // and counted against max_connections until every new connection got a 503).
    if (!writing_) FailWrites();
    return;
  }
  writing_ = true;
  write_buffers_.clear();
  in_flight_ = std::min(out_.size(), kMaxItemsPerWrite);
  size_t total = 0;
  for (size_t i = 0; i < in_flight_; ++i) {
    const OutItem& item = out_[i];
    if (!item.head.empty()) write_buffers_.push_back(net::buffer(item.head));
    if (!item.body.empty()) write_buffers_.push_back(net::buffer(item.body));
    if (!item.tail.empty()) write_buffers_.push_back(net::buffer(item.tail.data(), item.tail.size()));
    total += item.head.size() + item.body.size() + item.tail.size();
  }
  // Most writes fit in the socket's send buffer: made here, they complete without a trip
  // through the reactor (a posted completion costs the shard a poll and a dispatch). The one
  // level of nesting keeps a chain of completions that queue more writes off the stack.
  if (!eager_writing_) {
    beast::error_code ec;
    const size_t written = socket_.write_some(write_buffers_, ec);  // the socket never blocks
    if (ec || written == total) {
      if (ec == net::error::would_block || ec == net::error::try_again) {
        ec = {};
      } else {
        eager_writing_ = true;
        OnWrite(ec);
        eager_writing_ = false;
        return;
      }
    }
    DropFront(write_buffers_, written);
  }
  SetWriteDeadline();
  async_writing_ = true;
  read_may_note_drained_ = false;  // the pending read, if any (see StartRead())
  net::async_write(socket_, write_buffers_, [self = shared_from_this()](beast::error_code ec, size_t) {
    self->async_writing_ = false;
    self->OnWrite(ec);
  });
}

void Session::OnWrite(beast::error_code ec) {
  writing_ = false;
  ClearWriteDeadline();
  if (ec) {
    FailWrites();
    return;
  }
  // The written items leave the queue before any callback runs: a callback may queue more and
  // start the next write, which must begin after them.
  bool completes = false;
  std::vector<std::function<void(bool)>> callbacks;  // stream chunks only; most writes have none
  for (size_t i = std::exchange(in_flight_, 0); i > 0; --i) {
    OutItem& item = out_.front();
    if (item.on_written) callbacks.push_back(std::move(item.on_written));
    completes = completes || item.completes;
    out_.pop_front();
  }
  for (auto& callback : callbacks) RunCallback("on_written", [&callback] { callback(true); });
  // Callbacks may have queued more (and started writing it).
  if (completes) FinishExchange();
  if (!writing_) WriteNext();
}

void Session::FailWrites() {
  std::deque<OutItem> failed;
  failed.swap(out_);
  in_flight_ = 0;
  ClientGone();
  bool completes = false;
  for (OutItem& item : failed) {
    if (item.on_written) RunCallback("on_written", [&item] { item.on_written(false); });
    completes = completes || item.completes;
  }
  if (completes) FinishExchange();
}

void Session::FinishExchange() {
  if (!exchange_) return;
  // One clock reading for the access line and the next read's deadline.
  const Clock::time_point now = Clock::now();
  LogAccess(now);
  keep_alive_ = exchange_->keep_alive && Writable() && !state_.draining();
  exchange_.reset();  // drops the handler's callbacks, which may hold its responder
  ++requests_served_;
  AfterExchange(now);
}

void Session::LogAccess(Clock::time_point now) {
  const Exchange& exchange = *exchange_;
  auto duration = std::chrono::duration_cast<std::chrono::microseconds>(now - exchange.start);
  const int status = exchange.status != 0 ? exchange.status : kStatusClientClosed;
  const auto duration_us = static_cast<int64_t>(duration.count());
  // The server's own share: the request's time outside the handler's upstream call.
  const int64_t overhead_us =
      exchange.upstream_ns < 0 ? -1
                               : std::max<int64_t>(duration_us - exchange.upstream_ns / 1000, 0);
  state_.metrics().Record(shard_index_, exchange.route, exchange.method, status, duration_us,
                          overhead_us);
  if (!state_.logger().Enabled(LogLevel::kInfo)) return;
  // Never a header, never the query: they may hold credentials. (A LogField views its text:
  // the masked path must outlive the array.)
  const std::string path = PathForLog(exchange.path, state_.options().secret_prefixes);
  LogField fields[] = {{"method", exchange.method},
                       {"path", path},
                       {"status", status},
                       {"duration_us", duration_us},
                       {"request_id", exchange.request_id},
                       {"bytes", exchange.bytes},
                       {"client_gone", client_gone_ && !server_closed_},
                       {"", false},
                       {"", false},
                       {"", false}};
  size_t count = 7;
  // overhead_us only for a request that made an upstream call.
  if (overhead_us >= 0) fields[count++] = {"overhead_us", overhead_us};
  // The client ended its side before its answer (see Session::OnRead): gone, or only done
  // sending; TCP cannot tell which, so the answer was written and the status is its.
  if (peer_done_sending_ && !client_gone_) fields[count++] = {"client_ended_its_side", true};
  // A message the server refused itself says why (audit Q: a bare 400 told an operator nothing).
  if (!exchange.refused_because.empty()) fields[count++] = {"reason", exchange.refused_because};
  state_.logger().Log(LogLevel::kInfo, "http.request", std::span(fields, count));
}

void Session::RunCallback(const char* what, const std::function<void()>& callback) {
  try {
    callback();
  } catch (const std::exception& e) {
    state_.logger().Error("http.callback_exception", {{"callback", what}, {"error", e.what()}});
    server_closed_ = true;
    Close();
  } catch (...) {
    state_.logger().Error("http.callback_exception",
                          {{"callback", what}, {"error", "non-standard exception"}});
    server_closed_ = true;
    Close();
  }
}

}  // namespace keygate::http::internal
