// The upstream client on Beast/Asio. One Exchange per request, on the io_context it was made
// for (run by one thread), so an exchange's state needs no lock; only the idle pool, shared by
// all exchanges, has mutexes (one per shard of io_contexts, so that io threads do not contend).
// Responses are parsed by feeding a Beast parser from the connection's buffer: one handler per
// socket read.
#include "proxy/upstream_client.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
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
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>

#include "common/ascii.h"
#include "common/lazy_timer.h"
#include "common/text_writer.h"
#include "http/message_scan.h"
#include "http/read_readiness.h"
#include "http/resource_errors.h"

namespace keygate::proxy {
namespace {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

constexpr size_t kReadBytes = 16 * 1024;  // asked of each socket read
// Interim (1xx) answers skipped before the final one; more is a broken upstream.
constexpr int kMaxInterimAnswers = 8;
constexpr uint16_t kHttpPort = 80;
constexpr uint16_t kHttpsPort = 443;

bool IsIpLiteral(const std::string& host) {
  error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

class Exchange;

// One kept-alive connection, plain or TLS, with the one timer that enforces the deadlines of
// the exchange using it. Shared by the pool and the exchange; the timer's handler holds it
// weakly.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(net::io_context& io, ssl::context& tls_context, bool tls, std::string pool_key)
      : io_(io), pool_key_(std::move(pool_key)), timer_(io) {
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

  // False if the server has closed or reset the connection, or sent something unasked, while
  // it was idle. Bytes unasked must never be read as the next request's answer: it would go
  // to another caller, and every answer after it on the connection one caller late.
  bool LooksAlive() {
    if (!socket().is_open()) return false;
    if (tls_) {
      // Over TLS the socket may be empty while the bytes are already in hand: a later record
      // read with the answer's, held by OpenSSL (decrypted or not) or in its input BIO.
      SSL* ssl = tls_->native_handle();
      if (SSL_has_pending(ssl) != 0 || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0) return false;
    }
    char byte = 0;
    const ssize_t n = ::recv(socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  // The exchange using the connection now (none while it is pooled), and its deadline: when
  // it passes, the exchange's OnDeadline() runs. Moving the deadline later costs nothing; the
  // timer is re-armed only when the deadline moves before the pending wait's expiry.
  void Lend(const std::shared_ptr<Exchange>& user) { user_ = user; }
  void Reclaim() {
    user_.reset();
    deadline_ = SteadyClock::time_point::max();
  }
  // Idle in `pool` since `since`: unless an exchange takes it first, it is closed and leaves
  // the pool at `since + max_idle`, so that a connection to an upstream no longer called (a
  // provider removed, a base_url changed) or one its server has closed does not stay open, or
  // held, until shutdown (audit N and its review).
  void Park(SteadyClock::time_point since, std::chrono::milliseconds max_idle,
            std::weak_ptr<ConnectionPool> pool) {
    Reclaim();
    idle_since = since;
    deadline_ = since + max_idle;
    parked_in_ = std::move(pool);
    ArmTimer();
  }
  // `now`: a caller that has read the clock in this handler passes its reading.
  void SetDeadline(std::chrono::milliseconds timeout,
                   SteadyClock::time_point now = SteadyClock::now()) {
    deadline_ = now + timeout;
    ArmTimer();
  }
  SteadyClock::time_point deadline() const { return deadline_; }
  // Makes sure the timer fires by the deadline.
  void ArmTimer();

  const std::string& pool_key() const { return pool_key_; }
  beast::flat_buffer& buffer() { return buffer_; }
  SteadyClock::time_point idle_since;  // set by Park

 private:
  net::io_context& io_;
  const std::string pool_key_;
  std::optional<tcp::socket> plain_;
  std::optional<ssl::stream<tcp::socket>> tls_;
  beast::flat_buffer buffer_;
  LazyTimer timer_;
  std::weak_ptr<Exchange> user_;
  SteadyClock::time_point deadline_ = SteadyClock::time_point::max();
  std::weak_ptr<ConnectionPool> parked_in_;  // set while idle in a pool
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
  target.secrets = CredentialsOf(provider.headers);
  target.connect_timeout = std::chrono::milliseconds(provider.connect_timeout_ms);
  target.response_timeout = std::chrono::milliseconds(provider.response_timeout_ms);
  target.idle_timeout = std::chrono::milliseconds(provider.idle_timeout_ms);
  target.max_tokens_field = provider.max_tokens_field;
  target.pool_key = target.PoolKey();
  if (provider.api_key_env.empty()) return target;
  const char* key = getenv ? getenv(provider.api_key_env.c_str()) : nullptr;
  if (key == nullptr || *key == '\0') {
    target.unusable_reason = "provider " + provider.name + " has no API key: environment " +
                             "variable " + provider.api_key_env +
                             (key == nullptr ? " is not set" : " is empty");
  } else {
    target.headers.emplace_back("Authorization", std::string("Bearer ") + key);
    if (std::strlen(key) >= kMinSecretBytes) target.secrets.emplace_back(key);
  }
  return target;
}

std::vector<std::string> CredentialsOf(const http::HeaderList& headers) {
  // Whole words of the name, not substrings: `x-keygate-env` or `x-portkey-provider` carry no
  // secret, and a completion quoting their value must not lose it (audit X).
  constexpr std::array<std::string_view, 18> kCredentialWords = {
      "key", "apikey", "token", "secret", "secrets", "auth", "authorization", "password",
      "passwd", "pass", "passphrase", "signature", "credential", "credentials", "cookie", "jwt",
      "hmac", "bearer"};
  auto carries_one = [&](std::string_view name) {
    const std::string lowered = AsciiLowered(name);
    std::string_view rest = lowered;
    while (!rest.empty()) {
      const size_t end = rest.find_first_of("-_.");
      const std::string_view word = rest.substr(0, end);
      if (std::find(kCredentialWords.begin(), kCredentialWords.end(), word) !=
          kCredentialWords.end()) {
        return true;
      }
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end + 1);
    }
    return false;
  };
  std::vector<std::string> credentials;
  for (const auto& [name, value] : headers) {
    if (!carries_one(name)) continue;
    std::string_view credential = TrimOws(value);
    // "Bearer <token>": the token is the secret, echoed with or without its scheme.
    const size_t space = credential.find(' ');
    if (space != std::string_view::npos &&
        std::all_of(credential.begin(), credential.begin() + space,
                    [](char c) { return AsciiLower(c) >= 'a' && AsciiLower(c) <= 'z'; })) {
      credential = TrimOws(credential.substr(space + 1));
    }
    if (credential.size() >= kMinSecretBytes) credentials.emplace_back(credential);
  }
  return credentials;
}

const char* ToString(UpstreamOutcome outcome) {
  switch (outcome) {
    case UpstreamOutcome::kComplete: return "complete";
    case UpstreamOutcome::kConnectFailed: return "connect_failed";
    case UpstreamOutcome::kReset: return "reset";
    case UpstreamOutcome::kTimeout: return "timeout";
    case UpstreamOutcome::kBadResponse: return "bad_response";
    case UpstreamOutcome::kCancelled: return "cancelled";
    case UpstreamOutcome::kOutOfResources: return "out_of_resources";
  }
  return "unknown";
}

// ---- the pool -----------------------------------------------------------------------------

class ConnectionPool : public std::enable_shared_from_this<ConnectionPool> {
 public:
  explicit ConnectionPool(UpstreamClientOptions options)
      : options_(options), tls_context_(MakeTlsContext()) {}

  ssl::context& tls_context() { return tls_context_; }
  const UpstreamClientOptions& options() const { return options_; }

  // A live idle connection of `io` to `pool_key` at `now`, idle for less than `max_idle` (the
  // acquiring provider's: providers on one server share its pool, and one may have parked a
  // connection for longer than the other allows; the review), or nullptr.
  std::shared_ptr<Connection> Acquire(net::io_context& io, std::string_view pool_key,
                                      SteadyClock::time_point now,
                                      std::chrono::milliseconds max_idle) {
    Shard& shard = ShardOf(io);
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.idle.find(KeyView{&io, pool_key});
    if (it == shard.idle.end()) return nullptr;
    Pool& pool = it->second;
    while (!pool.empty()) {
      std::shared_ptr<Connection> connection = std::move(pool.back());
      pool.pop_back();
      // Its idle time is up (its timer is due), or past what this provider allows.
      if (connection->deadline() <= now || connection->idle_since + max_idle <= now) continue;
      // Checked every time, however short the idle (a system call): an upstream may write
      // after its answer at any moment (a stray answer, a 408, bytes beyond its length).
      if (connection->LooksAlive()) return connection;
    }
    return nullptr;
  }

  // `idle_since`: when the connection's last exchange read its last bytes; `max_idle`: how long
  // it may stay idle (its provider's idle_timeout_ms).
  void Release(net::io_context& io, std::shared_ptr<Connection> connection,
               SteadyClock::time_point idle_since, std::chrono::milliseconds max_idle) {
    connection->Park(idle_since, max_idle, weak_from_this());
    Shard& shard = ShardOf(io);
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.idle.find(KeyView{&io, connection->pool_key()});
    if (it == shard.idle.end()) {
      it = shard.idle.emplace(Key{&io, connection->pool_key()}, Pool()).first;
    }
    if (it->second.size() < options_.max_idle_per_upstream) {
      it->second.push_back(std::move(connection));
    }
  }

  // Takes `connection` (of `io`) out of its pool, if it is there. Run on io's thread.
  void Forget(net::io_context& io, const Connection* connection) {
    std::shared_ptr<Connection> leaving;  // released after the lock
    Shard& shard = ShardOf(io);
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.idle.find(KeyView{&io, connection->pool_key()});
    if (it == shard.idle.end()) return;
    Pool& pool = it->second;
    const auto at = std::find_if(pool.begin(), pool.end(),
                                 [&](const auto& held) { return held.get() == connection; });
    if (at == pool.end()) return;
    leaving = std::move(*at);
    pool.erase(at);
    if (pool.empty()) shard.idle.erase(it);
  }

  void CloseIdle() {
    for (Shard& shard : shards_) {
      Map closing;  // closed after the lock is released
      std::lock_guard<std::mutex> lock(shard.mu);
      closing.swap(shard.idle);
    }
  }

  size_t IdleCount() const {
    size_t count = 0;
    for (const Shard& shard : shards_) {
      std::lock_guard<std::mutex> lock(shard.mu);
      for (const auto& [key, pool] : shard.idle) count += pool.size();
    }
    return count;
  }

 private:
  // Connections are pooled per io_context (a connection's handlers run on its io_context's
  // thread, like the session of the call that uses it) and per upstream.
  // Looked up by KeyView, so that a call builds no string to find its pool.
  struct Key {
    net::io_context* io;
    std::string pool_key;
  };
  struct KeyView {
    net::io_context* io;
    std::string_view pool_key;
  };
  static KeyView ViewOf(const Key& key) { return {key.io, key.pool_key}; }
  static KeyView ViewOf(const KeyView& key) { return key; }
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(const auto& key) const {
      const KeyView view = ViewOf(key);
      return std::hash<std::string_view>()(view.pool_key) ^ std::hash<const void*>()(view.io);
    }
  };
  struct KeyEqual {
    using is_transparent = void;
    bool operator()(const auto& a, const auto& b) const {
      return ViewOf(a).io == ViewOf(b).io && ViewOf(a).pool_key == ViewOf(b).pool_key;
    }
  };
  using Pool = std::vector<std::shared_ptr<Connection>>;
  using Map = std::unordered_map<Key, Pool, KeyHash, KeyEqual>;
  // Each io_context's connections live in one shard, picked by its address, so that each io
  // thread locks and touches its own (two may share one: still correct, only less apart).
  struct alignas(64) Shard {
    mutable std::mutex mu;
    Map idle;  // guarded by mu
  };
  static constexpr size_t kShards = 16;
  static_assert(kShards > 1 && std::has_single_bit(kShards));  // a shift below 64
  Shard& ShardOf(const net::io_context& io) {
    constexpr uint64_t kFibonacci = 0x9E3779B97F4A7C15ull;  // spreads nearby addresses
    constexpr int kShift = 64 - std::countr_zero(kShards);  // keeps the product's top bits
    const auto address = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&io));
    return shards_[(address * kFibonacci) >> kShift];
  }

  const UpstreamClientOptions options_;
  ssl::context tls_context_;
  std::array<Shard, kShards> shards_;
};

// ---- one exchange -------------------------------------------------------------------------

namespace {

// Parses a response into keygate's own types: the head's fields, names lower-cased, into one
// string with their offsets (a provider's head has a score of fields; Beast's fields
// container, or a string per name and value, would cost allocations per field), body bytes
// handed to the exchange as views into the connection's buffer (no copy). Beast's
// basic_parser still does all the HTTP/1.1 work: syntax, limits, chunked coding, keep-alive.
// Not eager: put() returns once the head is complete, so the head is handed over before any
// body byte.
class ResponseParser final : public bhttp::basic_parser<false> {
 public:
  explicit ResponseParser(Exchange& exchange) : exchange_(exchange) {}

  int status() const { return status_; }
  // Views of the head's fields, valid while the parser lives and is not reset. REQUIRES:
  // is_header_done() (no field is added after: the text stays put).
  std::vector<UpstreamHeader> HeaderViews() const {
    std::vector<UpstreamHeader> views;
    views.reserve(fields_.size());
    const std::string_view text(field_text_);
    for (const Field& field : fields_) {
      views.push_back(UpstreamHeader{text.substr(field.name_at, field.name_size),
                                     text.substr(field.value_at, field.value_size)});
    }
    return views;
  }

 private:
  void on_request_impl(bhttp::verb, beast::string_view, beast::string_view, int,
                       error_code&) override {}
  void on_response_impl(int code, beast::string_view, int, error_code&) override {
    status_ = code;
  }
  void on_field_impl(bhttp::field, beast::string_view name, beast::string_view value,
                     error_code&) override {
    constexpr size_t kUsualHeadBytes = 1024;
    if (field_text_.capacity() < kUsualHeadBytes) field_text_.reserve(kUsualHeadBytes);
    const size_t name_at = field_text_.size();
    field_text_.append(name.data(), name.size());
    AsciiLowerInPlace(field_text_.data() + name_at, name.size());
    fields_.push_back(Field{name_at, name.size(), field_text_.size(), value.size()});
    field_text_.append(value.data(), value.size());
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  size_t on_body_impl(beast::string_view body, error_code&) override;
  void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, error_code& ec) override {
    return on_body_impl(body, ec);
  }
  void on_finish_impl(error_code&) override {}

  // A field of the head, as offsets into field_text_.
  struct Field {
    size_t name_at;
    size_t name_size;
    size_t value_at;
    size_t value_size;
  };

  Exchange& exchange_;
  int status_ = 0;
  std::string field_text_;     // every field's lower-cased name and value, one after another
  std::vector<Field> fields_;
};

// One request and its response. Every handler runs on the io_context the exchange was made
// for, which one thread runs, so the state needs no lock.
class Exchange final : public UpstreamCall, public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<ConnectionPool> client, net::io_context& io, UpstreamRequest request,
           std::shared_ptr<UpstreamObserver> observer)
      : client_(std::move(client)),
        io_(io),
        target_(std::move(request.target)),
        own_pool_key_(target_->pool_key.empty() ? target_->PoolKey() : std::string()),
        request_text_(Serialize(*target_, request)),
        observer_(std::move(observer)) {}

  // UpstreamCall
  void Start() override {
    net::dispatch(io_, [self = shared_from_this()] { self->Begin(); });
  }

  void Cancel() override {
    // Posted even on the exchange's own thread: Cancel() may be called from inside an
    // observer callback, which must not see the exchange change under it.
    net::post(io_, [self = shared_from_this()] {
      if (self->done_ || self->cancelled_) return;
      self->cancelled_ = true;
      self->Interrupt();
    });
  }

  // The connection's deadline passed (or its timer fired early: then it waits again).
  void OnDeadline() {
    if (done_ || !connection_) return;
    if (SteadyClock::now() < connection_->deadline()) return connection_->ArmTimer();
    timed_out_ = true;
    Interrupt();
  }

 private:
  static std::string Serialize(const UpstreamTarget& target, const UpstreamRequest& request);

  void Begin();
  void Use(std::shared_ptr<Connection> connection);
  void Connect();
  void OnConnect(const error_code& ec);
  void OnHandshake(const error_code& ec);
  void Write(SteadyClock::time_point now = SteadyClock::now());
  void OnWrite(const error_code& ec);
  void Read();
  void OnRead(error_code ec, size_t bytes);
  void Feed();
  void NewParser();
  // The head just parsed was an interim answer (1xx): skips it for the final one, or fails;
  // or had no HTTP status (outside 100..599): fails. False for a final answer.
  bool SkipInterim();
  bool TakeScannedResponse();
  friend class ResponseParser;
  void OnBody(std::string_view body);
  // `writing`: `ec` is the request's write's (the request did not go out whole).
  bool RetryIfStale(const error_code& ec, bool response_started, bool writing);
  void Fail(UpstreamOutcome outcome, const error_code& ec, std::string_view stage);
  void Finish(UpstreamOutcome outcome, std::string detail);
  void Interrupt();

  std::shared_ptr<ConnectionPool> client_;
  net::io_context& io_;
  std::optional<tcp::resolver> resolver_;  // only for a host name, only while connecting
  const std::string& pool_key() const {
    return own_pool_key_.empty() ? target_->pool_key : own_pool_key_;
  }

  const std::shared_ptr<const UpstreamTarget> target_;
  const std::string own_pool_key_;  // only for a target made without its pool_key
  const std::string request_text_;
  std::shared_ptr<UpstreamObserver> observer_;
  std::shared_ptr<Connection> connection_;
  std::optional<ResponseParser> parser_;
  std::optional<bool> scanned_keep_alive_;  // set when the scanner read the whole answer
  bool reused_ = false;     // connection_ came from the pool
  bool retried_ = false;    // a stale pooled connection was replaced once already
  int interim_answers_ = 0;  // 1xx heads skipped: the upstream has the request
  bool timed_out_ = false;
  bool cancelled_ = false;
  bool done_ = false;
  bool read_may_note_drained_ = false;  // see Read()
  SteadyClock::time_point last_read_at_;  // when a read last brought bytes
};

std::string Exchange::Serialize(const UpstreamTarget& target, const UpstreamRequest& request) {
  // Counted exactly but for the length's digits, so that the text is made in one allocation.
  constexpr size_t kFixedBytes = 128;
  size_t size = kFixedBytes + request.method.size() + target.base_path.size() +
                request.path.size() + target.host_header.size() + request.content_type.size() +
                request.request_id.size() + request.body.size();
  for (const http::HeaderList* headers : {&target.headers, &request.headers}) {
    for (const auto& [name, value] : *headers) size += name.size() + value.size() + 4;
  }
  std::string text;
  TextWriter out(&text, size);
  out.append(request.method).push_back(' ');
  out.append(target.base_path).append(request.path);
  out.append(" HTTP/1.1\r\nHost: ").append(target.host_header).append("\r\n");
  for (const auto& [name, value] : target.headers) {
    out.append(name).append(": ").append(value).append("\r\n");
  }
  // A header the provider's configuration sets is the operator's: the caller's goes unsent.
  auto configured = [&target](std::string_view name) {
    for (const auto& header : target.headers) {
      if (AsciiIEquals(header.first, name)) return true;
    }
    return false;
  };
  for (const auto& [name, value] : request.headers) {
    if (!configured(name)) out.append(name).append(": ").append(value).append("\r\n");
  }
  out.append("Content-Type: ").append(request.content_type).append("\r\n");
  // keygate reads every answer (its usage): it must not come compressed.
  out.append("Accept-Encoding: identity\r\n");
  if (!request.request_id.empty()) {
    out.append("x-request-id: ").append(request.request_id).append("\r\n");
  }
  out.append("Content-Length: ");
  AppendDecimal(request.body.size(), &out);
  out.append("\r\n\r\n").append(request.body);
  out.Finish();
  return text;
}

void Exchange::Begin() {
  if (cancelled_) return Finish(UpstreamOutcome::kCancelled, "cancelled before sending");
  const SteadyClock::time_point now = SteadyClock::now();
  std::shared_ptr<Connection> pooled =
      client_->Acquire(io_, pool_key(), now, target_->idle_timeout);
  if (pooled == nullptr) return Connect();
  Use(std::move(pooled));
  reused_ = true;
  Write(now);
}

void Exchange::Use(std::shared_ptr<Connection> connection) {
  connection_ = std::move(connection);
  connection_->Lend(shared_from_this());
}

void Exchange::Connect() {
  if (connection_) connection_->Reclaim();
  Use(std::make_shared<Connection>(io_, client_->tls_context(), target_->tls, pool_key()));
  reused_ = false;
  connection_->SetDeadline(target_->connect_timeout);
  if (IsIpLiteral(target_->host)) {
    const tcp::endpoint endpoint(net::ip::make_address(target_->host), target_->port);
    connection_->socket().async_connect(
        endpoint, [self = shared_from_this()](const error_code& ec) { self->OnConnect(ec); });
    return;
  }
  resolver_.emplace(io_);
  resolver_->async_resolve(
      target_->host, std::to_string(target_->port),
      [self = shared_from_this()](const error_code& ec, tcp::resolver::results_type results) {
        if (ec) return self->Fail(UpstreamOutcome::kConnectFailed, ec, "resolve");
        if (self->cancelled_ || self->timed_out_) {
          return self->Fail(UpstreamOutcome::kConnectFailed, net::error::operation_aborted,
                            "resolve");
        }
        net::async_connect(self->connection_->socket(), results,
                           [self](const error_code& connect_ec, const tcp::endpoint&) {
                             self->OnConnect(connect_ec);
                           });
      });
}

void Exchange::OnConnect(const error_code& ec) {
  if (ec) return Fail(UpstreamOutcome::kConnectFailed, ec, "connect");
  error_code ignored;
  connection_->socket().set_option(tcp::no_delay(true), ignored);
  error_code setup_ec;
  connection_->socket().non_blocking(true, setup_ec);  // Write() tries its write at once
  if (setup_ec) return Fail(UpstreamOutcome::kConnectFailed, setup_ec, "socket setup");
  ssl::stream<tcp::socket>* tls = connection_->tls();
  if (tls == nullptr) {
    http::WatchPeerHangup(connection_->socket());  // lets Read() skip doomed reads
    return Write();
  }
  // SNI and host-name verification (spec data-plane.md: TLS verified against the CA store),
  // by OpenSSL's own checks during the chain's verification, so that a mismatch is reported as
  // one ("hostname mismatch"; a verify callback's refusal reads "unspecified").
  SSL* ssl = tls->native_handle();
  const bool checked =
      IsIpLiteral(target_->host)
          ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), target_->host.c_str()) == 1
          : SSL_set_tlsext_host_name(ssl, target_->host.c_str()) == 1 &&
                SSL_set1_host(ssl, target_->host.c_str()) == 1;
  if (!checked) {
    return Fail(UpstreamOutcome::kConnectFailed, net::error::invalid_argument,
                "tls setup for " + target_->host);
  }
  tls->async_handshake(ssl::stream_base::client,
                       [self = shared_from_this()](const error_code& handshake_ec) {
                         self->OnHandshake(handshake_ec);
                       });
}

void Exchange::OnHandshake(const error_code& ec) {
  if (ec) {
    // OpenSSL's error says only "certificate verify failed"; the verification's own result
    // tells an operator which: expired, another host's name, a CA not trusted (audit N).
    const long verify = SSL_get_verify_result(connection_->tls()->native_handle());
    if (verify == X509_V_OK) return Fail(UpstreamOutcome::kConnectFailed, ec, "tls handshake");
    return Fail(UpstreamOutcome::kConnectFailed, ec,
                std::string("tls handshake (") + X509_verify_cert_error_string(verify) + ")");
  }
  Write();
}

void Exchange::Write(SteadyClock::time_point now) {
  connection_->SetDeadline(target_->response_timeout, now);
  size_t written = 0;
  if (connection_->tls() == nullptr) {
    // A request almost always fits in the socket's send buffer: written at once, it needs no
    // trip through the reactor. The rest, if any, goes by async_write. The socket is
    // non-blocking (made so when it connected).
    error_code ec;
    written = connection_->socket().write_some(net::buffer(request_text_), ec);
    if (ec != net::error::would_block && ec != net::error::try_again) {
      if (ec || written == request_text_.size()) return OnWrite(ec);
    }
  }
  connection_->Visit([this, written](auto& stream) {
    net::async_write(stream, net::buffer(request_text_) + written,
                     [self = shared_from_this()](const error_code& ec, size_t) {
                       self->OnWrite(ec);
                     });
  });
}

void Exchange::OnWrite(const error_code& ec) {
  if (ec) {
    if (RetryIfStale(ec, false, /*writing=*/true)) return;
    return Fail(UpstreamOutcome::kReset, ec, "write");
  }
  NewParser();
  Feed();  // bytes left in the buffer would be a protocol error; Feed() reads first if none
}

void Exchange::NewParser() {
  parser_.emplace(*this);
  parser_->header_limit(static_cast<std::uint32_t>(client_->options().max_header_bytes));
  parser_->body_limit(boost::none);
}

bool Exchange::SkipInterim() {
  const int status = parser_->status();
  if (status < 100 || status > 599) {
    // Three digits, as HTTP/1.1's grammar has it, but no status (RFC 9110 §15: 100..599): a
    // broken upstream, whose answer keygate cannot pass on.
    Finish(UpstreamOutcome::kBadResponse,
           "head: status " + std::to_string(status) + " is not an HTTP status");
    return true;
  }
  if (status > 199) return false;
  // RFC 9110 §15.2: 100 Continue, 103 Early Hints ... come before the final answer, on the
  // same connection; none is the caller's. Taken for the answer, it would end the exchange
  // with the final answer still to come, and the connection back in the pool would hand that
  // to the next call.
  if (status == 101 || ++interim_answers_ > kMaxInterimAnswers) {
    Finish(UpstreamOutcome::kBadResponse,
           status == 101 ? "head: 101 Switching Protocols, not asked for"
                         : "head: more than " + std::to_string(kMaxInterimAnswers) +
                               " interim (1xx) answers");
    return true;
  }
  NewParser();
  return true;
}

void Exchange::Read() {
  connection_->Visit([this](auto& stream) {
    stream.async_read_some(connection_->buffer().prepare(kReadBytes),
                           [self = shared_from_this()](const error_code& ec, size_t bytes) {
                             self->OnRead(ec, bytes);
                           });
  });
  // A plain connection's reads never overlap a write of the exchange (the request is written
  // whole first), so a read that waited in the reactor may mark the socket drained when it
  // comes back short (http/read_readiness.h). TLS reads go through the stream's own buffer.
  read_may_note_drained_ =
      connection_->tls() == nullptr && http::ReadWasQueued(connection_->socket());
}

void Exchange::OnRead(error_code ec, size_t bytes) {
  if (!ec && read_may_note_drained_ && bytes < kReadBytes) {
    http::NoteDrained(connection_->socket());
  }
  if (done_) return;
  connection_->buffer().commit(bytes);
  if (!ec) {
    // The response timeout is the longest silence: each read that brings bytes restarts it.
    if (bytes > 0) {
      last_read_at_ = SteadyClock::now();
      connection_->SetDeadline(target_->response_timeout, last_read_at_);
    }
    return Feed();
  }
  const bool eof = ec == net::error::eof || ec == ssl::error::stream_truncated;
  if (eof && parser_->is_header_done() && !cancelled_ && !timed_out_) {
    // A body delimited by the connection's end (no length, not chunked) ends here.
    error_code eof_ec;
    parser_->put_eof(eof_ec);
    if (!eof_ec && parser_->is_done()) return Finish(UpstreamOutcome::kComplete, "");
    ec = eof_ec ? eof_ec : ec;
  }
  if (eof && !parser_->got_some()) ec = bhttp::error::end_of_stream;
  if (RetryIfStale(ec, parser_->got_some() || interim_answers_ > 0, /*writing=*/false)) return;
  const bool lost = IsConnectionLost(ec) || cancelled_ || timed_out_;
  Fail(lost ? UpstreamOutcome::kReset : UpstreamOutcome::kBadResponse, ec,
       parser_->is_header_done() ? "body" : "head");
}

// Parses what the buffer holds: the head (handed over once complete), then the body, piece
// by piece (handed over by OnBody as the parser meets it); reads more when the buffer runs dry.
void Exchange::Feed() {
  beast::flat_buffer& buffer = connection_->buffer();
  if (!cancelled_ && buffer.size() > 0 && !parser_->got_some() && TakeScannedResponse()) return;
  while (!done_) {
    if (cancelled_) return Finish(UpstreamOutcome::kCancelled, "cancelled");
    if (parser_->is_done()) return Finish(UpstreamOutcome::kComplete, "");
    if (buffer.size() == 0) return Read();
    const bool head_was_done = parser_->is_header_done();
    error_code ec;
    const size_t used = parser_->put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == bhttp::error::need_more) {
      if (!parser_->is_done()) return Read();
      ec = {};
    }
    if (ec) return Fail(UpstreamOutcome::kBadResponse, ec, head_was_done ? "body" : "head");
    if (!head_was_done && parser_->is_header_done()) {
      if (SkipInterim()) continue;
      observer_->OnResponseHead(parser_->status(), parser_->HeaderViews(), /*whole=*/false);
      continue;
    }
    if (used == 0 && !parser_->is_done()) return Read();
  }
}

// A whole answer of the common shape at the start of the buffer, read by the scanner
// (http/message_scan.h) and handed over; false leaves the bytes to the Beast parser. Sound
// because keygate never sends HEAD upstream (an answer to HEAD has a length but no body).
bool Exchange::TakeScannedResponse() {
  beast::flat_buffer& buffer = connection_->buffer();
  const auto bytes = static_cast<char*>(buffer.data().data());
  http::ScannedMessage scanned;
  if (!http::ScanResponse(std::string_view(bytes, buffer.size()),
                          {client_->options().max_header_bytes, UINT64_MAX}, &scanned)) {
    return false;
  }
  // The head is read here and nowhere else: its names are lower-cased where they lie.
  http::LowerFieldNamesInPlace(bytes, scanned);
  std::array<UpstreamHeader, http::ScannedMessage::kMaxFields> headers;
  for (size_t i = 0; i < scanned.field_count; ++i) {
    headers[i] = UpstreamHeader{scanned.field_storage[i].name, scanned.field_storage[i].value};
  }
  scanned_keep_alive_ = scanned.keep_alive;
  // The views stay valid past consume(): the bytes stay put until the buffer is next prepared.
  buffer.consume(scanned.size);
  observer_->OnResponseHead(scanned.status, std::span(headers.data(), scanned.field_count),
                            /*whole=*/true);
  OnBody(scanned.body);
  Finish(UpstreamOutcome::kComplete, "");
  return true;
}

// The parser met body bytes (de-chunked). They stay valid until the buffer is next prepared.
void Exchange::OnBody(std::string_view body) {
  if (!body.empty() && !cancelled_) observer_->OnResponseData(body);
}

size_t ResponseParser::on_body_impl(beast::string_view body, error_code&) {
  exchange_.OnBody(std::string_view(body.data(), body.size()));
  return body.size();
}

bool Exchange::RetryIfStale(const error_code& ec, bool response_started, bool writing) {
  // Only a request that could not be written whole to a pooled connection the server had
  // closed or reset meanwhile: the upstream cannot have taken it, so sending it again cannot
  // make it run twice. Once the request went out whole, an end of the connection before any
  // answer is the call's failure, never a retry: the upstream may have read the request before
  // it closed (a crash, a balancer giving up) and run it, and model calls cost money (audit N:
  // such a call was sent twice and answered 200). As nginx and Go's transport do for a POST.
  // A connection the server closed while idle is found out before reuse (LooksAlive).
  const bool not_taken = writing && (ec == net::error::eof || ec == net::error::broken_pipe ||
                                     ec == net::error::connection_reset);
  if (!reused_ || retried_ || response_started || cancelled_ || timed_out_ || !not_taken) {
    return false;
  }
  retried_ = true;
  parser_.reset();
  Connect();
  return true;
}

void Exchange::Fail(UpstreamOutcome outcome, const error_code& ec, std::string_view stage) {
  // The machine's descriptors gone too (ENFILE): as much the gateway's shortage as its own.
  if (outcome == UpstreamOutcome::kConnectFailed &&
      (http::IsResourceExhaustion(ec) || ec == std::errc::too_many_files_open_in_system)) {
    outcome = UpstreamOutcome::kOutOfResources;
  }
  if (cancelled_) outcome = UpstreamOutcome::kCancelled;
  if (timed_out_) outcome = UpstreamOutcome::kTimeout;
  std::string detail(stage);
  detail.append(": ").append(timed_out_ ? "timed out" : ec.message());
  Finish(outcome, std::move(detail));
}

void Exchange::Finish(UpstreamOutcome outcome, std::string detail) {
  if (done_) return;
  done_ = true;
  // Beast's keep_alive() requires a whole head: asked only of a complete answer it parsed.
  const bool keep_alive =
      scanned_keep_alive_.has_value()
          ? *scanned_keep_alive_
          : outcome == UpstreamOutcome::kComplete && parser_.has_value() && parser_->keep_alive();
  const bool reusable = outcome == UpstreamOutcome::kComplete && keep_alive && connection_ &&
                        connection_->buffer().size() == 0;
  if (connection_ && reusable) {
    // A complete answer came in a read: its time is when the connection fell idle. (Unset, it
    // would make the connection look long idle, and the pool drop it: read the clock then.)
    const bool read_some = last_read_at_ != SteadyClock::time_point{};
    client_->Release(io_, std::move(connection_), read_some ? last_read_at_ : SteadyClock::now(),
                     target_->idle_timeout);
  } else if (connection_) {
    connection_->Reclaim();
    connection_->Close();
    connection_.reset();
  }
  std::shared_ptr<UpstreamObserver> observer = std::move(observer_);
  observer->OnResponseEnd(outcome, detail);
}

void Exchange::Interrupt() {
  // Closing makes the pending operation complete at once with an error; its handler then
  // reports the cancellation or timeout.
  if (resolver_) resolver_->cancel();
  if (connection_) connection_->Close();
}

}  // namespace

void Connection::ArmTimer() {
  timer_.FireBy(deadline_, [weak = weak_from_this()](SteadyClock::time_point expiry) {
    std::shared_ptr<Connection> self = weak.lock();
    if (self == nullptr) return;
    self->timer_.Fired(expiry);
    if (std::shared_ptr<Exchange> user = self->user_.lock()) return user->OnDeadline();
    if (self->deadline_ == SteadyClock::time_point::max()) return;  // not parked
    if (SteadyClock::now() < self->deadline_) return self->ArmTimer();
    // Idle past the pool's limit: it closes and leaves the pool.
    self->Close();
    if (std::shared_ptr<ConnectionPool> pool = self->parked_in_.lock()) {
      pool->Forget(self->io_, self.get());
    }
  });
}

// ---- UpstreamClient -----------------------------------------------------------------------

UpstreamClient::UpstreamClient(UpstreamClientOptions options)
    : pool_(std::make_shared<ConnectionPool>(options)) {}

UpstreamClient::~UpstreamClient() = default;

std::shared_ptr<UpstreamCall> UpstreamClient::Create(UpstreamRequest request,
                                                     std::shared_ptr<UpstreamObserver> observer,
                                                     boost::asio::io_context& io) {
  return std::make_shared<Exchange>(pool_, io, std::move(request), std::move(observer));
}

void UpstreamClient::CloseIdle() { pool_->CloseIdle(); }

size_t UpstreamClient::idle_connections() const { return pool_->IdleCount(); }

}  // namespace keygate::proxy
