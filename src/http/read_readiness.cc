#include "http/read_readiness.h"

#include <sys/epoll.h>

#include <cstdint>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/basic_socket.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/version.hpp>

// The reactor state these hints touch is private to Asio, and its shape is Boost 1.81's
// epoll_reactor (boost/asio/detail/epoll_reactor.hpp: the reactor's epoll_fd_; a
// descriptor_state's mutex_, reactor_, descriptor_, registered_events_, op_queue_,
// try_speculative_ and, from scheduler_operation, task_result_ (the events being handled);
// basic_socket's impl_). Any other combination compiles to no-ops.
#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && !defined(BOOST_ASIO_DISABLE_EPOLL)
#define KEYGATE_READ_READINESS_HINTS 1
#endif

namespace keygate::http {

#ifdef KEYGATE_READ_READINESS_HINTS
namespace {

namespace detail = boost::asio::detail;
using Socket = boost::asio::ip::tcp::socket;
using SocketBase = boost::asio::basic_socket<boost::asio::ip::tcp, boost::asio::any_io_executor>;
using SocketImpl =
    detail::io_object_impl<detail::reactive_socket_service<boost::asio::ip::tcp>,
                           boost::asio::any_io_executor>;
using Reactor = detail::epoll_reactor;
using State = Reactor::descriptor_state;
constexpr int kReadOp = detail::epoll_reactor::read_op;
constexpr int kOps = detail::epoll_reactor::max_ops;

// The standard lets an explicit instantiation name a member its scope may not access
// ([temp.spec.general]); each Tag's friend function then hands that member pointer out.
template <typename Tag, typename Tag::Type kMember>
struct Expose {
  friend typename Tag::Type MemberOf(Tag) { return kMember; }
};

struct ImplTag {
  using Type = SocketImpl SocketBase::*;
  friend Type MemberOf(ImplTag);
};
struct MutexTag {
  using Type = detail::conditionally_enabled_mutex State::*;
  friend Type MemberOf(MutexTag);
};
struct QueuesTag {
  using Type = detail::op_queue<detail::reactor_op> (State::*)[kOps];
  friend Type MemberOf(QueuesTag);
};
struct SpeculativeTag {
  using Type = bool (State::*)[kOps];
  friend Type MemberOf(SpeculativeTag);
};
struct RegisteredTag {
  using Type = uint32_t State::*;
  friend Type MemberOf(RegisteredTag);
};
struct ReactorTag {
  using Type = Reactor* State::*;
  friend Type MemberOf(ReactorTag);
};
struct DescriptorTag {
  using Type = int State::*;
  friend Type MemberOf(DescriptorTag);
};
struct EventsTag {
  using Type = unsigned int detail::scheduler_operation::*;
  friend Type MemberOf(EventsTag);
};
struct EpollFdTag {
  using Type = int Reactor::*;
  friend Type MemberOf(EpollFdTag);
};

template struct Expose<ImplTag, &SocketBase::impl_>;
template struct Expose<MutexTag, &State::mutex_>;
template struct Expose<QueuesTag, &State::op_queue_>;
template struct Expose<SpeculativeTag, &State::try_speculative_>;
template struct Expose<RegisteredTag, &State::registered_events_>;
template struct Expose<ReactorTag, &State::reactor_>;
template struct Expose<DescriptorTag, &State::descriptor_>;
template struct Expose<EventsTag, &detail::scheduler_operation::task_result_>;
template struct Expose<EpollFdTag, &Reactor::epoll_fd_>;

constexpr uint32_t kHangupEvents = EPOLLRDHUP | EPOLLHUP | EPOLLERR;

State* StateOf(Socket& socket) {
  SocketBase& base = socket;
  return (base.*MemberOf(ImplTag{})).get_implementation().reactor_data_;
}

}  // namespace

bool WatchPeerHangup(Socket& socket) {
  State* state = StateOf(socket);
  if (state == nullptr) return false;
  detail::conditionally_enabled_mutex::scoped_lock lock(state->*MemberOf(MutexTag{}));
  uint32_t& registered = state->*MemberOf(RegisteredTag{});
  if (registered == 0) return false;  // not registered with the reactor
  if ((registered & EPOLLRDHUP) != 0) return true;
  epoll_event event{};
  event.events = registered | EPOLLRDHUP;
  event.data.ptr = state;
  const int epoll_fd = (state->*MemberOf(ReactorTag{}))->*MemberOf(EpollFdTag{});
  if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, state->*MemberOf(DescriptorTag{}), &event) != 0) {
    return false;
  }
  registered = event.events;
  return true;
}

bool ReadWasQueued(Socket& socket) {
  State* state = StateOf(socket);
  if (state == nullptr) return false;
  detail::conditionally_enabled_mutex::scoped_lock lock(state->*MemberOf(MutexTag{}));
  return !(state->*MemberOf(QueuesTag{}))[kReadOp].empty();
}

void NoteDrained(Socket& socket) {
  State* state = StateOf(socket);
  if (state == nullptr) return;
  detail::conditionally_enabled_mutex::scoped_lock lock(state->*MemberOf(MutexTag{}));
  // Without EPOLLRDHUP registered, a FIN that came in the same event as the last bytes is
  // invisible here; with it, such an event carries EPOLLRDHUP and the socket is not drained
  // (its end of stream is still to be read). A FIN or error arriving later raises a new event.
  if ((state->*MemberOf(RegisteredTag{}) & EPOLLRDHUP) == 0) return;
  // The events the reactor is handling for the socket: this handler runs inside that handling
  // (the contract in the header). A C-style cast reaches the state's private base.
  const auto* handled = (const detail::scheduler_operation*)state;  // NOLINT: private base
  if ((handled->*MemberOf(EventsTag{}) & kHangupEvents) != 0) return;
  (state->*MemberOf(SpeculativeTag{}))[kReadOp] = false;
}

bool ReadReadinessHintsSupported() { return true; }

#else

bool WatchPeerHangup(boost::asio::ip::tcp::socket&) { return false; }
bool ReadWasQueued(boost::asio::ip::tcp::socket&) { return false; }
void NoteDrained(boost::asio::ip::tcp::socket&) {}
bool ReadReadinessHintsSupported() { return false; }

#endif

}  // namespace keygate::http
