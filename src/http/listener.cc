#include "http/listener.h"

#include <string>
#include <utility>

#include "http/error_response.h"

namespace keygate::http::internal {

namespace {

// Back-off after an accept error that retrying at once would only repeat (out of file
// descriptors or memory), so the listener does not spin.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
// One warning per this many refused connections, so an overload does not flood the log.
constexpr uint64_t kRefusedLogEvery = 1000;

bool IsResourceExhaustion(const beast::error_code& ec) {
  return ec == net::error::no_descriptors || ec == net::error::no_buffer_space ||
         ec == net::error::no_memory;
}

std::string DescribeEndpoint(const tcp::endpoint& endpoint) {
  std::string address = endpoint.address().to_string();
  if (endpoint.address().is_v6()) address = "[" + address + "]";
  return address + ":" + std::to_string(endpoint.port());
}

}  // namespace

Listener::Listener(std::vector<net::io_context*> shards, ServerState& state)
    : shards_(std::move(shards)),
      state_(state),
      acceptor_(*shards_.front()),
      retry_timer_(acceptor_.get_executor()) {}

Status Listener::Listen(const tcp::endpoint& endpoint) {
  beast::error_code ec;
  auto fail = [&](const char* step) {
    return Error::Unavailable("cannot listen on " + DescribeEndpoint(endpoint) + ": " + step +
                              ": " + ec.message());
  };
  acceptor_.open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  // Lets a restarted server bind while old connections sit in TIME_WAIT; it does not allow
  // two listeners on one port.
  acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (ec) return fail("set_option");
  acceptor_.bind(endpoint, ec);
  if (ec) return fail("bind");
  acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  return OkStatus();
}

uint16_t Listener::port() const {
  beast::error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

void Listener::Run() {
  net::dispatch(acceptor_.get_executor(), [self = shared_from_this()] { self->DoAccept(); });
}

void Listener::Close() {
  net::post(acceptor_.get_executor(), [self = shared_from_this()] {
    beast::error_code ignored;
    self->retry_timer_.cancel();
    self->acceptor_.close(ignored);
  });
}

void Listener::DoAccept() {
  if (!acceptor_.is_open()) return;
  // Connections go to the shards in turn; each lives on its shard's one thread.
  const size_t index = next_shard_;
  acceptor_.async_accept(*shards_[index], [self = shared_from_this(), index](beast::error_code ec,
                                                                              tcp::socket socket) {
    self->OnAccept(ec, std::move(socket), index);
  });
}

void Listener::OnAccept(beast::error_code ec, tcp::socket socket, size_t shard) {
  if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    state_.logger().Warn("http.accept_failed", {{"error", ec.message()}});
    if (IsResourceExhaustion(ec)) {
      retry_timer_.expires_after(kAcceptRetryDelay);
      retry_timer_.async_wait([self = shared_from_this()](beast::error_code timer_ec) {
        if (!timer_ec) self->DoAccept();
      });
      return;
    }
    DoAccept();
    return;
  }
  if (state_.active() >= state_.options().max_connections) {
    Refuse(std::move(socket));
  } else {
    std::make_shared<Session>(std::move(socket), *shards_[shard], shard, state_)->Start();
    next_shard_ = (next_shard_ + 1) % shards_.size();
  }
  DoAccept();
}

void Listener::Refuse(tcp::socket socket) {
  if (refused_++ % kRefusedLogEvery == 0) {
    state_.logger().Warn(
        "http.connection_refused",
        {{"active_connections", static_cast<uint64_t>(state_.active())},
         {"max_connections", static_cast<uint64_t>(state_.options().max_connections)},
         {"refused_total", refused_}});
  }
  Response response = ErrorResponse(Error::Unavailable("Too many open connections; retry later"));
  ResponseHead head;
  head.status = response.status;
  head.content_type = response.content_type;
  std::string request_id = RequestIdFor({});
  head.request_id = request_id;
  head.date = HttpDate();
  head.content_length = response.body.size();
  head.keep_alive = false;
  auto wire = std::make_shared<std::string>(SerializeHead(head, nullptr) + response.body);
  auto connection = std::make_shared<tcp::socket>(std::move(socket));
  // A ~250-byte write to a fresh socket completes at once; the socket is closed either way.
  net::async_write(*connection, net::buffer(*wire), [connection, wire](beast::error_code, size_t) {
    beast::error_code ignored;
    connection->shutdown(tcp::socket::shutdown_send, ignored);
    connection->close(ignored);
  });
}

}  // namespace keygate::http::internal
