// The HTTP/1.1 client the data plane forwards model calls with (spec data-plane.md "Models and
// providers"): keep-alive connections pooled per upstream (scheme, host, port), TLS through
// OpenSSL verified against the system's CA store with SNI and host-name checking, a connect
// timeout (resolve + connect + handshake) and a response timeout (the longest wait for the
// response head, and then the longest silence between two reads of its body), and cancellation.
// The response body is handed over piece by piece as it arrives, so that a stream can be
// relayed without buffering. Every request carries the body's Content-Type,
// `Accept-Encoding: identity` (keygate reads each answer's usage, so it must not come
// compressed) and, when given, the call's x-request-id.
//
// A pooled connection found closed by its server before any byte of the answer arrived is
// replaced by a fresh one and the request sent once more (the server never saw it). A
// connection goes back to the pool only after a complete response that allows keep-alive.
//
// Beast, Asio and OpenSSL stay in upstream_client.cc; this header forward-declares the
// io_context only.
//
// Thread safety: Create() and idle_connections() may be called from any thread. Each call runs
// on the io_context given to Create(), which must be run by exactly one thread (an
// http::Server shard, whose sockets only that thread may touch); its observer's methods are
// called on that thread, one at a time, in order. Connections are pooled per io_context.
// UpstreamCall::Cancel() may be called from any thread, any number of times. CloseIdle() only
// once no thread runs those io_contexts (it closes their sockets on the calling thread).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "config/config.h"
#include "http/handler.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace keygate::proxy {

class ConnectionPool;  // private to upstream_client.cc

// Where a provider's calls go and what they carry, resolved once from its ProviderConfig.
struct UpstreamTarget {
  std::string provider;     // the provider's name, for logs
  bool tls = false;         // https
  std::string host;         // name or IP literal, without IPv6 brackets
  uint16_t port = 0;
  std::string host_header;  // "host" or "host:port" (brackets kept for IPv6)
  std::string base_path;    // path prefix of base_url, "" or "/v1"
  // Sent on every request: the provider's extra headers and, when it has an API key, its
  // Authorization. Holds a secret: never log it.
  http::HeaderList headers;
  // What an upstream must never hand back to a caller, should it echo it (in a body, an
  // event or a header): the provider's API key and the credentials among its configured
  // headers (CredentialsOf). Each at least kMinSecretBytes long (a shorter one would match
  // text that is no secret). Secrets: never log them.
  std::vector<std::string> secrets;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds response_timeout{600000};
  // config::ProviderConfig::idle_timeout_ms: a pooled connection idle this long is closed.
  std::chrono::milliseconds idle_timeout{60000};
  std::string max_tokens_field = "max_tokens";  // config::ProviderConfig::max_tokens_field
  // Set when the provider cannot be called (its api_key_env is unset): why, without secrets.
  std::string unusable_reason;

  // "scheme://host:port": the pool a connection belongs to. Made once by MakeUpstreamTarget
  // (a call would otherwise build it for its pool lookup); a target built by hand without it
  // gets it composed per call.
  std::string pool_key;
  std::string PoolKey() const;  // composes it
};

inline constexpr size_t kMinSecretBytes = 8;

// The credentials among a provider's configured headers, as an upstream may echo them: the
// value of a header whose name says it carries one (one of its words, split at - _ and ., in
// any case, is key, apikey, token, secret(s), auth, authorization, password, passwd, pass,
// passphrase, signature, credential(s), cookie, jwt, hmac or bearer: api-key, x-api-key,
// x-goog-api-key, ocp-apim-subscription-key, x-auth-token, x-jwt-assertion, ...), or for a
// value of the form "Scheme token" (Bearer, Basic, ...) the token alone. Values shorter than
// kMinSecretBytes are left out.
std::vector<std::string> CredentialsOf(const http::HeaderList& headers);

// Resolves `provider` into a target, reading its API key from the environment through
// `getenv`. A provider whose api_key_env is unset or empty is still returned, with
// unusable_reason set (its calls are refused; keygate still starts).
// Returns InvalidArgument if base_url is not http(s)://host[:port][/path].
Result<UpstreamTarget> MakeUpstreamTarget(const config::ProviderConfig& provider,
                                          const config::GetEnv& getenv);

// How an upstream exchange ended.
enum class UpstreamOutcome {
  kComplete,       // the whole response was received
  kConnectFailed,  // name resolution, connection or TLS handshake failed (refused: 502)
  kReset,          // the connection closed or broke before the response was complete (502)
  kTimeout,        // the connect or response timeout passed (504)
  kBadResponse,    // the upstream's answer was not valid HTTP/1.1 (502)
  kCancelled,      // Cancel() was called
  // keygate itself could not open a connection: out of file descriptors or memory (503: the
  // provider is not at fault, audit BB)
  kOutOfResources,
};

// Returns "complete", "connect_failed", ... for logs.
const char* ToString(UpstreamOutcome outcome);

// A header of an upstream's answer, as views valid during OnResponseHead() only.
struct UpstreamHeader {
  std::string_view name;  // lower-cased
  std::string_view value;
};

// Receives the events of one exchange, on the exchange's strand, in this order:
// OnResponseHead at most once, then OnResponseData any number of times, then OnResponseEnd
// exactly once (also after a failure before any head).
class UpstreamObserver {
 public:
  virtual ~UpstreamObserver() = default;
  // The status and headers of the response, in order. The views are valid during the call
  // only (they point into the connection's buffer): what is kept must be copied. `whole`: the
  // whole body is in hand, and OnResponseData (all of it, at once) and OnResponseEnd
  // (kComplete) follow before anything else happens on this thread.
  virtual void OnResponseHead(int status, std::span<const UpstreamHeader> headers,
                              bool whole) = 0;
  // A piece of the (de-chunked) body. The view is valid during the call only.
  virtual void OnResponseData(std::string_view data) = 0;
  // The end; `detail` says what failed (no secret), empty on kComplete.
  virtual void OnResponseEnd(UpstreamOutcome outcome, std::string_view detail) = 0;
};

// One exchange, made by UpstreamClient::Create().
class UpstreamCall {
 public:
  virtual ~UpstreamCall() = default;
  // Starts the exchange. Call once. The observer may be called before Start() returns.
  virtual void Start() = 0;
  // Stops the exchange: its connection is closed (never pooled) and the observer gets
  // OnResponseEnd(kCancelled) unless the exchange has ended already. Thread-safe, idempotent.
  virtual void Cancel() = 0;
};

// The views are read only while Create() runs (the request's text is made there).
struct UpstreamRequest {
  std::shared_ptr<const UpstreamTarget> target;  // never null
  std::string_view method = "POST";
  std::string_view path;       // appended to target->base_path, e.g. "/chat/completions"
  http::HeaderList headers;    // end-to-end headers to send besides the target's
  std::string_view content_type = "application/json";  // of the body
  std::string_view request_id;  // sent as x-request-id when not empty
  std::string body;             // sent with Content-Length
};

struct UpstreamClientOptions {
  size_t max_idle_per_upstream = 256;  // idle connections kept per pool key
  size_t max_header_bytes = 64 * 1024;
};

class UpstreamClient {
 public:
  explicit UpstreamClient(UpstreamClientOptions options = {});
  // REQUIRES: CloseIdle() called before the io_contexts the calls ran on are destroyed.
  ~UpstreamClient();
  UpstreamClient(const UpstreamClient&) = delete;
  UpstreamClient& operator=(const UpstreamClient&) = delete;

  // Makes the exchange for `request`, to run on `io` (not owned; it must outlive the
  // exchange); nothing is sent before its Start(). The observer is kept until its
  // OnResponseEnd returns. Never fails synchronously: every failure reaches the observer.
  // REQUIRES: request.target non-null and usable; observer non-null; `io` run by one thread.
  std::shared_ptr<UpstreamCall> Create(UpstreamRequest request,
                                       std::shared_ptr<UpstreamObserver> observer,
                                       boost::asio::io_context& io);

  // Closes every idle pooled connection, at shutdown.
  // REQUIRES: no thread runs the io_contexts the calls ran on.
  void CloseIdle();

  // Idle pooled connections, over every upstream.
  size_t idle_connections() const;

 private:
  std::shared_ptr<ConnectionPool> pool_;  // shared with running exchanges
};

}  // namespace keygate::proxy
