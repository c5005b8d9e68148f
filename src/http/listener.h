// Private to src/http/*.cc (includes Asio): accepts connections and starts a Session on its
// own strand for each, or answers 503 and closes when max_connections are already open.
//
// Thread safety: Listen() before the io_context runs; Run() and Close() from any thread (the
// acceptor lives on its own strand).
#pragma once

#include <cstdint>
#include <memory>

#include "common/status.h"
#include "http/beast.h"
#include "http/session.h"

namespace keygate::http::internal {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(net::io_context& ioc, ServerState& state);

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
  void Refuse(tcp::socket socket);

  net::io_context& ioc_;
  ServerState& state_;
  tcp::acceptor acceptor_;
  net::steady_timer retry_timer_;
  uint64_t refused_ = 0;
};

}  // namespace keygate::http::internal
