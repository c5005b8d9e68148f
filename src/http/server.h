// The HTTP/1.1 server: accepts connections, parses requests, routes them through a Router to
// Handlers and writes their responses (complete or streamed as chunks).
//
// Structure: `io_threads` shards, each an io_context run by one thread of its own (nothing is
// shared between them on the hot path: no strand, no lock, no cross-thread wake-up). The
// listener accepts on the first shard and hands connections to the shards in turn; each
// connection is a session living on its shard. Handlers marked Execution::kBlocking run on a
// separate pool of `blocking_threads` threads. A handler that does asynchronous I/O of its own
// uses Request::io, its connection's shard. Beast and Asio stay in the http/*.cc files.
//
// Limits (spec §6): a request header must arrive within header_timeout_s of the connection
// opening or of its first byte; a kept-alive connection may stay silent for idle_timeout_s
// between requests; a body (or a response write) may stall for at most idle_timeout_s; a body
// over max_body_bytes is answered 413 and the connection closed, one that would take the bodies
// being received past max_body_memory_bytes 503 and a close; a header block over 32 KiB
// gets 431; malformed HTTP gets 400 and a close; connections beyond max_connections get 503
// and a close. After a response that closes the connection, input is drained for up to 2 s so
// that the client reads the response rather than a reset.
//
// Every response carries `x-request-id`; every request produces one "http.request" log line
// (method, path without query, status, duration_us, request_id, bytes; never a header).
//
// Thread safety: Start() and Run() are called once each, from one thread, in that order.
// Stop(), OnSighup() and active_connections() may be called from any thread, including from
// handlers. The Router and Logger must outlive the Server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/status.h"
#include "http/router.h"

namespace keygate::http {

struct ServerOptions {
  // Address to listen on: an IP literal or a resolvable host name.
  std::string host = "127.0.0.1";
  // Port to listen on; 0 picks an ephemeral port (Start() returns it).
  uint16_t port = 8080;
  // Largest accepted request body; larger bodies are answered 413 payload_too_large.
  size_t max_body_bytes = 10 * 1024 * 1024;
  // Most memory the bodies being received may hold, summed over every connection (each holds
  // what has arrived of it); a body that would pass it is answered 503 and its
  // connection closed (audit Z: 64 clients trickling 10 MiB bodies held 650 MB). Raised to
  // max_body_bytes when below it.
  size_t max_body_memory_bytes = 256 * 1024 * 1024;
  // Seconds allowed to receive a complete request header.
  int header_timeout_s = 10;
  // Seconds a kept-alive connection may stay silent between requests; also the longest stall
  // allowed while reading a body or writing a response.
  int idle_timeout_s = 75;
  // Open connections beyond this are answered 503 and closed.
  size_t max_connections = 10000;
  // io threads (one shard each); 0 = std::thread::hardware_concurrency().
  int io_threads = 0;
  // Threads running Execution::kBlocking handlers.
  int blocking_threads = 64;
  // Seconds Stop() waits for in-flight requests before closing their connections.
  int drain_timeout_s = 20;
  // A client's x-request-id that holds one of these (keygate's key prefixes) is not adopted:
  // a key there would be logged and sent upstream. The request gets an id of its own.
  std::vector<std::string> secret_prefixes;
};

class Server {
 public:
  // Does not take ownership of `router` or `logger`; both must outlive the Server.
  // The Router must be fully built: it is not modified after Start().
  Server(ServerOptions options, Router& router, Logger& logger);
  ~Server();  // REQUIRES: Run() is not running (it has returned, or was never called).
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens. Connections are accepted once Run() runs.
  // Returns the bound port on success (the ephemeral one if options.port == 0).
  // Errors: InvalidArgument (param names the option) if an option is out of range or the host
  //         does not resolve;
  //         Unavailable if the address cannot be bound or listened on (in use, not local,
  //         permission denied), with a message naming host, port and reason;
  //         Internal if Start() was already called successfully.
  Result<uint16_t> Start();

  // Runs the io threads (the calling thread is one of them) and blocks until Stop(), SIGTERM
  // or SIGINT, then drains: stops accepting, lets in-flight requests finish for up to
  // drain_timeout_s, closes idle connections, and returns once the io threads have stopped
  // and the blocking handlers already running have returned (queued ones are dropped).
  // While running, SIGHUP calls the OnSighup() callback instead of stopping.
  // Unavailable, at once, when its threads cannot be made (a limit on tasks or memory).
  // REQUIRES: Start() succeeded; Run() is called at most once.
  Status Run();

  // Begins the graceful stop described in Run(). Thread-safe and idempotent; does not block.
  // May be called before Run(), in which case Run() drains at once and returns.
  void Stop();

  // Sets the callback run (on a blocking-pool thread, so it may block) each time the process
  // receives SIGHUP while Run() runs. Replaces any previous callback.
  void OnSighup(std::function<void()> callback);

  // Holds SIGHUP (blocks it in the calling thread and in every thread started from it after)
  // until a Server's Run() has its handler in place and unblocks it on its own thread: a
  // SIGHUP sent while the process starts (loading the store can take seconds) is then handled
  // as a reload once it serves, instead of ending the process (its default action). Call it
  // first thing in the process, before any thread starts.
  static void HoldSighupUntilRun();

  // Number of connections currently open (including ones finishing a close).
  size_t active_connections() const;

  // Appends the server's metrics in Prometheus' text format (http/metrics.h, and the open
  // connections). Thread-safe.
  void AppendMetrics(std::string* out) const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keygate::http
