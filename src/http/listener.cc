#include "http/listener.h"

#include <unistd.h>  // close

#include <string>
#include <utility>

#include "http/error_response.h"
#include "http/resource_errors.h"

namespace keygate::http::internal {

namespace {

// Back-off after an accept error that retrying at once would only repeat (out of file
// descriptors or memory), so the listener does not spin.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};
// One warning per this many refused connections, so an overload does not flood the log.
constexpr uint64_t kRefusedLogEvery = 1000;
// At most one warning this often while accepts fail.
constexpr std::chrono::seconds kAcceptFailedLogEvery{10};

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
  // Accepted on the first shard, into its reactor; HandOver() moves each connection on.
  acceptor_.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    self->OnAccept(ec, std::move(socket));
  });
}

void Listener::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    ++accept_failures_;
    const auto now = std::chrono::steady_clock::now();
    if (!accept_failure_logged_at_ || now - *accept_failure_logged_at_ >= kAcceptFailedLogEvery) {
      // `failures`: those since the last line, this one included.
      state_.logger().Warn("http.accept_failed",
                           {{"error", ec.message()}, {"failures", accept_failures_}});
      accept_failures_ = 0;
      accept_failure_logged_at_ = now;
    }
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
  if (accept_failure_logged_at_) {
    // The first connection after failures: the end of the shortage, with the failures no line
    // has counted yet (the last ten seconds' at most), and the next failure is logged at once.
    state_.logger().Warn("http.accept_recovered", {{"failures", accept_failures_}});
    accept_failures_ = 0;
    accept_failure_logged_at_.reset();
  }
  // Connections still on their way to a shard are not counted yet: a burst can pass the limit
  // by the few accepted in the same instant.
  if (state_.active() >= state_.options().max_connections) {
    Refuse(std::move(socket));
  } else {
    HandOver(std::move(socket), next_shard_);
    next_shard_ = (next_shard_ + 1) % shards_.size();
  }
  DoAccept();
}

namespace {

// A descriptor on its way between shards: closed if it never arrives (the shard stopped).
class DescriptorInTransit {
 public:
  explicit DescriptorInTransit(int fd) : fd_(fd) {}
  ~DescriptorInTransit() {
    if (fd_ >= 0) ::close(fd_);
  }
  DescriptorInTransit(const DescriptorInTransit&) = delete;
  DescriptorInTransit& operator=(const DescriptorInTransit&) = delete;

  int fd() const { return fd_; }
  void Adopted() { fd_ = -1; }

 private:
  int fd_;
};

}  // namespace

void Listener::HandOver(tcp::socket socket, size_t shard) {
  if (shard == 0) {
    std::make_shared<Session>(std::move(socket), *shards_[0], 0, state_)->Start();
    return;
  }
  // A shard's reactor is used by its own thread only (MakeShards in server.cc): the
  // descriptor leaves this shard's reactor here and joins the other's on the other's thread.
  beast::error_code ec;
  const tcp::endpoint local = socket.local_endpoint(ec);
  auto fd = std::make_shared<DescriptorInTransit>(ec ? -1 : socket.release(ec));
  if (ec || fd->fd() < 0) {
    state_.logger().Warn("http.accept_failed", {{"error", ec.message()}});
    return;
  }
  net::post(*shards_[shard], [self = shared_from_this(), fd, shard, local] {
    tcp::socket adopted(*self->shards_[shard]);
    beast::error_code assign_ec;
    adopted.assign(local.protocol(), fd->fd(), assign_ec);
    if (assign_ec) {
      self->state_.logger().Warn("http.accept_failed", {{"error", assign_ec.message()}});
      return;
    }
    fd->Adopted();
    std::make_shared<Session>(std::move(adopted), *self->shards_[shard], shard, self->state_)
        ->Start();
  });
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
