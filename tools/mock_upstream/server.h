// The mock upstream's HTTP/1.1 transport on Boost.Beast/Asio, after Beast's advanced server
// example: a listener hands each connection to a session that reads a request, asks MockApi
// what to do, and does it (respond, stream, close, hang), with keep-alive.
//
// Built to stay out of a proxy benchmark's way: one io_context per thread, each run by exactly
// one thread (so a connection never needs a strand), connections spread round-robin over them,
// TCP_NODELAY, responses written straight from reused buffers without Beast's field containers.
// Beast and Asio are included only by server.cc.
//
// Thread safety: construct and Run() from one thread; Stop() from any thread. SIGINT and
// SIGTERM call Stop() by themselves while Run() is running.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "mock_api.h"
#include "options.h"
#include "stats.h"

namespace mock_upstream {

class Server {
 public:
  // Binds options.host:options.port with options.threads io threads (0 = one per core).
  // Throws std::runtime_error (saying why) if the address is invalid or cannot be bound: a
  // startup failure, reported by main. Does not own `api` or `stats`; both must outlive it.
  // REQUIRES: stats was made with at least ThreadCount(options) slots.
  Server(const Options& options, const MockApi& api, Stats& stats);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port (the real one when options.port was 0).
  uint16_t port() const;
  // "HOST:PORT" as bound, with brackets around an IPv6 host.
  std::string address() const;

  // Serves until Stop() or SIGINT/SIGTERM; returns once every io thread has finished. Open
  // connections are then closed, in-flight streams cut.
  void Run();
  // Makes Run() return. Idempotent.
  void Stop();

  // The number of io threads `options` asks for.
  static size_t ThreadCount(const Options& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mock_upstream
