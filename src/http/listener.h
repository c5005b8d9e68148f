// Private to src/http/*.cc (includes Asio): accepts connections and starts a Session for each,
// on the shards in turn (round robin), or answers 503 and closes when max_connections are
// already open.
//
// Thread safety: Listen() before the shards run; Run() and Close() from any thread (the
// acceptor lives on the first shard, which one thread runs). A connection is accepted on the
// first shard and its descriptor handed to its own shard's thread, which alone operates on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/status.h"
#include "http/beast.h"
#include "http/session.h"

namespace keygate::http::internal {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  // `shards` is not empty; the acceptor lives on shards[0]. The io_contexts outlive the
  // Listener.
  Listener(std::vector<net::io_context*> shards, ServerState& state);

  // Opens, binds and listens on `endpoint`.
  // Returns OK, or Unavailable naming the endpoint and the system's reason (address in use,
  // address not available, permission denied).
  Status Listen(const tcp::endpoint& endpoint);
  // The bound port. REQUIRES: Listen() succeeded.
  uint16_t port() const;
  // Starts accepting (asynchronously, once the io_context runs).
  void Run();
  // Stops accepting and closes the listening socket. Idempotent.
  void Close();

 private:
  void DoAccept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  // Starts the connection's Session on `shard`.
  void HandOver(tcp::socket socket, size_t shard);
  void Refuse(tcp::socket socket);

  const std::vector<net::io_context*> shards_;
  size_t next_shard_ = 0;
  ServerState& state_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_timer_;
  uint64_t refused_ = 0;
  // Accept failures since the last warning, and when that was: one line every
  // kAcceptFailedLogEvery while they last (audit BB: ten a second while out of descriptors).
  uint64_t accept_failures_ = 0;
  std::optional<std::chrono::steady_clock::time_point> accept_failure_logged_at_;
};

}  // namespace keygate::http::internal
