// The upstream client on Beast/Asio. One Exchange per request, on a strand of its own: every
// socket, resolver and timer handler is bound to that strand, so an exchange's state needs no
// lock; only the idle pool, shared by all exchanges, has a mutex.
#include "proxy/upstream_client.h"

#include <sys/socket.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>

namespace keygate::proxy {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kBodyBufferBytes = 16 * 1024;
// A pooled connection idle for less than this is reused without checking that it is alive.
constexpr std::chrono::milliseconds kTrustIdleFor{1000};
constexpr uint16_t kHttpPort = 80;
constexpr uint16_t kHttpsPort = 443;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsIpLiteral(const std::string& host) {
  error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

// One kept-alive connection, plain or TLS.
class Connection {
 public:
  Connection(net::io_context& io, ssl::context& tls_context, bool tls, std::string pool_key)
      : pool_key_(std::move(pool_key)) {
    if (tls) {
      tls_.emplace(io, tls_context);
    } else {
      plain_.emplace(io);
    }
  }
  ~Connection() { Close(); }

  tcp::socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }
  ssl::stream<tcp::socket>* tls() { return tls_ ? &*tls_ : nullptr; }
  // Calls f(stream) with the stream requests are written to and read from.
  template <class F>
  void Visit(F&& f) {
    if (tls_) {
      f(*tls_);
    } else {
      f(*plain_);
    }
  }

  void Close() {
    error_code ignored;
    socket().close(ignored);
  }

  // False if the server has closed the connection (or sent something unasked) while idle.
  bool LooksAlive() {
    if (!socket().is_open()) return false;
    char byte = 0;
    const ssize_t n = ::recv(socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  const std::string& pool_key() const { return pool_key_; }
  beast::flat_buffer& buffer() { return buffer_; }
  SteadyClock::time_point idle_since;

 private:
  const std::string pool_key_;
  std::optional<tcp::socket> plain_;
  std::optional<ssl::stream<tcp::socket>> tls_;
  beast::flat_buffer buffer_;
};

ssl::context MakeTlsContext() {
  ssl::context context(ssl::context::tls_client);
  // spec data-plane.md: TLS verified against the system's CA store.
  context.set_default_verify_paths();
  context.set_verify_mode(ssl::verify_peer);
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  return context;
}

// The peer closed or reset the connection.
bool IsClosedByPeer(const error_code& ec) {
  return ec == net::error::eof || ec == net::error::connection_reset ||
         ec == net::error::broken_pipe || ec == bhttp::error::end_of_stream ||
         ec == ssl::error::stream_truncated;
}

// The connection closed or broke in the middle of a response.
bool IsConnectionLost(const error_code& ec) {
  return IsClosedByPeer(ec) || ec == bhttp::error::partial_message ||
         ec == net::error::operation_aborted;
}

}  // namespace

// ---- targets ------------------------------------------------------------------------------

std::string UpstreamTarget::PoolKey() const {
  return std::string(tls ? "https://" : "http://") + host + ":" + std::to_string(port);
}

namespace {

// Splits "host", "host:port", "[v6]" or "[v6]:port" into `target`'s host and port (the port
// stays as set when absent). Returns false if it is malformed.
bool ParseAuthority(std::string_view authority, UpstreamTarget* target) {
  size_t port_colon = std::string_view::npos;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    target->host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return false;
      port_colon = close + 1;
    }
  } else {
    port_colon = authority.rfind(':');
    target->host = std::string(authority.substr(0, port_colon));
  }
  if (port_colon != std::string_view::npos) {
    const std::string digits(authority.substr(port_colon + 1));
    if (digits.empty() || digits.size() > 5 ||
        digits.find_first_not_of("0123456789") != std::string::npos || std::stoi(digits) > 65535) {
      return false;
    }
    target->port = static_cast<uint16_t>(std::stoi(digits));
  }
  return !target->host.empty();
}

}  // namespace

Result<UpstreamTarget> MakeUpstreamTarget(const config::ProviderConfig& provider,
                                          const config::GetEnv& getenv) {
  UpstreamTarget target;
  target.provider = provider.name;
  std::string_view url = provider.base_url;
  if (url.substr(0, 8) == "https://") {
    target.tls = true;
    url.remove_prefix(8);
  } else if (url.substr(0, 7) == "http://") {
    url.remove_prefix(7);
  } else {
    url = {};
  }
  const size_t slash = url.find('/');
  target.base_path = slash == std::string_view::npos ? "" : std::string(url.substr(slash));
  while (!target.base_path.empty() && target.base_path.back() == '/') target.base_path.pop_back();
  target.host_header = std::string(url.substr(0, slash));
  target.port = target.tls ? kHttpsPort : kHttpPort;
  if (url.empty() || !ParseAuthority(url.substr(0, slash), &target)) {
    return Error::InvalidArgument("provider " + provider.name + ": base_url must be " +
                                      "http(s)://host[:port][/path], got '" + provider.base_url +
                                      "'",
                                  "base_url");
  }
  target.headers = provider.headers;
  target.connect_timeout = std::chrono::milliseconds(provider.connect_timeout_ms);
  target.response_timeout = std::chrono::milliseconds(provider.response_timeout_ms);
  if (provider.api_key_env.empty()) return target;
  const char* key = getenv ? getenv(provider.api_key_env.c_str()) : nullptr;
  if (key == nullptr || *key == '\0') {
    target.unusable_reason = "provider " + provider.name + " has no API key: environment " +
                             "variable " + provider.api_key_env + " is not set";
  } else {
    target.headers.emplace_back("Authorization", std::string("Bearer ") + key);
  }
  return target;
}

const char* ToString(UpstreamOutcome outcome) {
  switch (outcome) {
    case UpstreamOutcome::kComplete: return "complete";
    case UpstreamOutcome::kConnectFailed: return "connect_failed";
    case UpstreamOutcome::kReset: return "reset";
    case UpstreamOutcome::kTimeout: return "timeout";
    case UpstreamOutcome::kBadResponse: return "bad_response";
    case UpstreamOutcome::kCancelled: return "cancelled";
  }
  return "unknown";
}

// ---- the pool -----------------------------------------------------------------------------

class ConnectionPool {
 public:
  ConnectionPool(net::io_context& io, UpstreamClientOptions options)
      : io_(io), options_(options), tls_context_(MakeTlsContext()) {}

  net::io_context& io() { return io_; }
  ssl::context& tls_context() { return tls_context_; }
  const UpstreamClientOptions& options() const { return options_; }

  // A live idle connection to `pool_key`, or nullptr.
  std::unique_ptr<Connection> Acquire(const std::string& pool_key) {
    const auto now = SteadyClock::now();
    const auto oldest = now - options_.max_idle_time;
    const auto recent = now - kTrustIdleFor;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = idle_.find(pool_key);
    if (it == idle_.end()) return nullptr;
    std::vector<std::unique_ptr<Connection>>& pool = it->second;
    while (!pool.empty()) {
      std::unique_ptr<Connection> connection = std::move(pool.back());
      pool.pop_back();
      if (connection->idle_since < oldest) continue;
      // A connection back in the pool a moment ago is almost never stale, and a stale one is
      // caught anyway (RetryIfStale); checking costs a system call, so only older ones pay it.
      if (connection->idle_since >= recent || connection->LooksAlive()) return connection;
    }
    return nullptr;
  }

  void Release(std::unique_ptr<Connection> connection) {
    connection->idle_since = SteadyClock::now();
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::unique_ptr<Connection>>& pool = idle_[connection->pool_key()];
    if (pool.size() < options_.max_idle_per_upstream) pool.push_back(std::move(connection));
  }

  void CloseIdle() {
    std::unordered_map<std::string, std::vector<std::unique_ptr<Connection>>> closing;
    std::lock_guard<std::mutex> lock(mu_);
    closing.swap(idle_);
  }

  size_t IdleCount() const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t count = 0;
    for (const auto& [key, pool] : idle_) count += pool.size();
    return count;
  }

 private:
  net::io_context& io_;
  const UpstreamClientOptions options_;
  ssl::context tls_context_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Connection>>> idle_;  // by mu_
};

// ---- one exchange -------------------------------------------------------------------------

namespace {

using Parser = bhttp::response_parser<bhttp::buffer_body>;

class Exchange final : public UpstreamCall, public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<ConnectionPool> client, UpstreamRequest request,
           std::shared_ptr<UpstreamObserver> observer)
      : client_(std::move(client)),
        strand_(net::make_strand(client_->io())),
        timer_(strand_),
        resolver_(strand_),
        target_(std::move(request.target)),
        request_text_(Serialize(*target_, request)),
        observer_(std::move(observer)) {}

  // UpstreamCall
  void Start() override {
    net::dispatch(strand_, [self = shared_from_this()] { self->Begin(); });
  }

  void Cancel() override {
    net::post(strand_, [self = shared_from_this()] {
      if (self->done_ || self->cancelled_) return;
      self->cancelled_ = true;
      self->Interrupt();
    });
  }

 private:
  static std::string Serialize(const UpstreamTarget& target, const UpstreamRequest& request);

  void Begin();
  void Connect();
  void OnConnect(const error_code& ec);
  void OnHandshake(const error_code& ec);
  void Write();
  void OnWrite(const error_code& ec);
  void ReadHead();
  void OnHead(const error_code& ec);
  void ReadBody();
  void OnBody(error_code ec);
  bool RetryIfStale(const error_code& ec, bool response_started);
  void Fail(UpstreamOutcome outcome, const error_code& ec, std::string_view stage);
  void Finish(UpstreamOutcome outcome, std::string detail);
  void ArmTimer(std::chrono::milliseconds timeout);
  void Interrupt();

  template <class F>
  auto Bind(F&& f) {
    return net::bind_executor(strand_, std::forward<F>(f));
  }

  std::shared_ptr<ConnectionPool> client_;
  net::strand<net::io_context::executor_type> strand_;
  net::steady_timer timer_;
  tcp::resolver resolver_;
  const std::shared_ptr<const UpstreamTarget> target_;
  const std::string request_text_;
  std::shared_ptr<UpstreamObserver> observer_;
  std::unique_ptr<Connection> connection_;
  std::optional<Parser> parser_;
  std::array<char, kBodyBufferBytes> body_buffer_{};
  uint64_t timer_generation_ = 0;
  bool reused_ = false;     // connection_ came from the pool
  bool retried_ = false;    // a stale pooled connection was replaced once already
  bool timed_out_ = false;
  bool cancelled_ = false;
  bool done_ = false;
};

std::string Exchange::Serialize(const UpstreamTarget& target, const UpstreamRequest& request) {
  std::string out;
  out.reserve(256 + request.body.size());
  out.append(request.method).append(" ").append(target.base_path).append(request.path);
  out.append(" HTTP/1.1\r\nHost: ").append(target.host_header).append("\r\n");
  for (const auto& [name, value] : target.headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  for (const auto& [name, value] : request.headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  out.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n\r\n");
  out.append(request.body);
  return out;
}

void Exchange::Begin() {
  if (cancelled_) return Finish(UpstreamOutcome::kCancelled, "cancelled before sending");
  connection_ = client_->Acquire(target_->PoolKey());
  reused_ = connection_ != nullptr;
  if (reused_) return Write();
  Connect();
}

void Exchange::Connect() {
  connection_ = std::make_unique<Connection>(client_->io(), client_->tls_context(), target_->tls,
                                             target_->PoolKey());
  reused_ = false;
  ArmTimer(target_->connect_timeout);
  if (IsIpLiteral(target_->host)) {
    const tcp::endpoint endpoint(net::ip::make_address(target_->host), target_->port);
    connection_->socket().async_connect(
        endpoint, Bind([self = shared_from_this()](const error_code& ec) { self->OnConnect(ec); }));
    return;
  }
  resolver_.async_resolve(
      target_->host, std::to_string(target_->port),
      Bind([self = shared_from_this()](const error_code& ec, tcp::resolver::results_type results) {
        if (ec) return self->Fail(UpstreamOutcome::kConnectFailed, ec, "resolve");
        if (self->cancelled_ || self->timed_out_) {
          return self->Fail(UpstreamOutcome::kConnectFailed, net::error::operation_aborted,
                            "resolve");
        }
        net::async_connect(self->connection_->socket(), results,
                           self->Bind([self](const error_code& connect_ec, const tcp::endpoint&) {
                             self->OnConnect(connect_ec);
                           }));
      }));
}

void Exchange::OnConnect(const error_code& ec) {
  if (ec) return Fail(UpstreamOutcome::kConnectFailed, ec, "connect");
  error_code ignored;
  connection_->socket().set_option(tcp::no_delay(true), ignored);
  ssl::stream<tcp::socket>* tls = connection_->tls();
  if (tls == nullptr) return Write();
  // SNI and host-name verification (spec data-plane.md: TLS verified against the CA store).
  if (!IsIpLiteral(target_->host)) {
    SSL_set_tlsext_host_name(tls->native_handle(), target_->host.c_str());
  }
  tls->set_verify_callback(ssl::host_name_verification(target_->host));
  tls->async_handshake(ssl::stream_base::client,
                       Bind([self = shared_from_this()](const error_code& handshake_ec) {
                         self->OnHandshake(handshake_ec);
                       }));
}

void Exchange::OnHandshake(const error_code& ec) {
  if (ec) return Fail(UpstreamOutcome::kConnectFailed, ec, "tls handshake");
  Write();
}

void Exchange::Write() {
  ArmTimer(target_->response_timeout);
  connection_->Visit([this](auto& stream) {
    net::async_write(stream, net::buffer(request_text_),
                     Bind([self = shared_from_this()](const error_code& ec, size_t) {
                       self->OnWrite(ec);
                     }));
  });
}

void Exchange::OnWrite(const error_code& ec) {
  if (ec) {
    if (RetryIfStale(ec, false)) return;
    return Fail(UpstreamOutcome::kReset, ec, "write");
  }
  ReadHead();
}

void Exchange::ReadHead() {
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(client_->options().max_header_bytes));
  parser_->body_limit(boost::none);
  connection_->Visit([this](auto& stream) {
    bhttp::async_read_header(stream, connection_->buffer(), *parser_,
                             Bind([self = shared_from_this()](const error_code& ec, size_t) {
                               self->OnHead(ec);
                             }));
  });
}

void Exchange::OnHead(const error_code& ec) {
  if (ec) {
    if (RetryIfStale(ec, parser_->got_some())) return;
    const bool lost = IsConnectionLost(ec) || cancelled_ || timed_out_;
    return Fail(lost ? UpstreamOutcome::kReset : UpstreamOutcome::kBadResponse, ec, "head");
  }
  const auto& head = parser_->get();
  http::HeaderList headers;
  for (const auto& field : head) headers.emplace_back(Lower(field.name_string()), field.value());
  observer_->OnResponseHead(static_cast<int>(head.result_int()), std::move(headers));
  ReadBody();
}

void Exchange::ReadBody() {
  if (parser_->is_done()) return Finish(UpstreamOutcome::kComplete, "");
  if (cancelled_) return Finish(UpstreamOutcome::kCancelled, "cancelled");
  ArmTimer(target_->response_timeout);
  parser_->get().body().data = body_buffer_.data();
  parser_->get().body().size = body_buffer_.size();
  connection_->Visit([this](auto& stream) {
    bhttp::async_read_some(stream, connection_->buffer(), *parser_,
                           Bind([self = shared_from_this()](const error_code& ec, size_t) {
                             self->OnBody(ec);
                           }));
  });
}

void Exchange::OnBody(error_code ec) {
  // A full body buffer is not an error: it is handed over and the read goes on.
  if (ec == bhttp::error::need_buffer) ec = {};
  const size_t produced = body_buffer_.size() - parser_->get().body().size;
  if (produced > 0 && !cancelled_) {
    observer_->OnResponseData(std::string_view(body_buffer_.data(), produced));
  }
  if (ec) {
    const bool lost = IsConnectionLost(ec) || cancelled_ || timed_out_;
    return Fail(lost ? UpstreamOutcome::kReset : UpstreamOutcome::kBadResponse, ec, "body");
  }
  ReadBody();
}

bool Exchange::RetryIfStale(const error_code& ec, bool response_started) {
  // Only a pooled connection the server had closed while idle (FIN: it read nothing of the
  // request), before any answer: sending it again cannot make the upstream run it twice. A
  // reset after the request went out is not retried: the upstream may have taken it.
  const bool closed_while_idle = ec == net::error::eof || ec == bhttp::error::end_of_stream ||
                                 ec == net::error::broken_pipe;
  if (!reused_ || retried_ || response_started || cancelled_ || timed_out_ || !closed_while_idle) {
    return false;
  }
  retried_ = true;
  Connect();
  return true;
}

void Exchange::Fail(UpstreamOutcome outcome, const error_code& ec, std::string_view stage) {
  if (cancelled_) outcome = UpstreamOutcome::kCancelled;
  if (timed_out_) outcome = UpstreamOutcome::kTimeout;
  std::string detail(stage);
  detail.append(": ").append(timed_out_ ? "timed out" : ec.message());
  Finish(outcome, std::move(detail));
}

void Exchange::Finish(UpstreamOutcome outcome, std::string detail) {
  if (done_) return;
  done_ = true;
  ++timer_generation_;
  timer_.cancel();
  const bool reusable = outcome == UpstreamOutcome::kComplete && parser_ && parser_->keep_alive();
  if (connection_ && reusable) {
    client_->Release(std::move(connection_));
  } else {
    connection_.reset();
  }
  std::shared_ptr<UpstreamObserver> observer = std::move(observer_);
  observer->OnResponseEnd(outcome, detail);
}

void Exchange::ArmTimer(std::chrono::milliseconds timeout) {
  const uint64_t generation = ++timer_generation_;
  timer_.expires_after(timeout);
  timer_.async_wait(Bind([self = shared_from_this(), generation](const error_code& ec) {
    if (ec || generation != self->timer_generation_ || self->done_) return;
    self->timed_out_ = true;
    self->Interrupt();
  }));
}

void Exchange::Interrupt() {
  // Closing makes the pending operation complete at once with an error; its handler then
  // reports the cancellation or timeout.
  resolver_.cancel();
  if (connection_) connection_->Close();
}

}  // namespace

// ---- UpstreamClient -----------------------------------------------------------------------

UpstreamClient::UpstreamClient(boost::asio::io_context& io, UpstreamClientOptions options)
    : pool_(std::make_shared<ConnectionPool>(io, options)) {}

UpstreamClient::~UpstreamClient() = default;

std::shared_ptr<UpstreamCall> UpstreamClient::Create(UpstreamRequest request,
                                                     std::shared_ptr<UpstreamObserver> observer) {
  return std::make_shared<Exchange>(pool_, std::move(request), std::move(observer));
}

void UpstreamClient::CloseIdle() { pool_->CloseIdle(); }

size_t UpstreamClient::idle_connections() const { return pool_->IdleCount(); }

}  // namespace keygate::proxy
