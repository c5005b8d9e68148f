// Saves the system call Asio spends on a read that cannot succeed yet.
//
// Asio 1.81's epoll reactor tries every new read on a socket at once ("speculatively") unless the
// socket's last read found it empty at end of stream. On a connection that alternates request
// and answer, the read started right after a request (client side) or right after sending one
// (upstream side) always fails with EAGAIN: two wasted recv calls per proxied call, ~1.2 µs
// each on a virtual machine. A read that returned fewer bytes than asked for has drained the
// socket: whatever arrives later raises a new edge-triggered epoll event, so the next read may
// wait for that event instead of trying first. These calls let a session tell the reactor so
// (docs/decisions/0015-read-readiness.md).
//
// Private to src/http and src/proxy (.cc files only: it includes Asio).
//
// Use, for one socket with at most one read outstanding:
//   WatchPeerHangup(socket);                     // once, when the connection is set up
//   socket.async_read_some(buffer, handler);
//   read_waits = ReadWasQueued(socket);          // right after starting the read
//   ... in the handler, on success:
//   if (read_waits && bytes < buffer_size) NoteDrained(socket);
// A read that completed at once (queued == false) must not mark the socket drained: its
// completion was posted, and the reactor may have handled a newer event for the socket before
// the handler runs, so "drained" could be stale and the next read would wait forever. For the
// same reason a read that overlapped an async write on the socket (a reactor write operation:
// both may complete in one event, the read's completion then posted) must not mark it either.
//
// REQUIRES: the socket's io_context is run by one thread (keygate's shards): the reactor's
// event handling for the socket and the handler then never overlap.
//
// Where the Asio internals these rely on differ (another Boost version, another reactor), both
// are no-ops: ReadWasQueued() returns false and reads are tried at once, as Asio does anyway.
//
// Thread safety: see REQUIRES.
#pragma once

#include <boost/asio/ip/tcp.hpp>

namespace keygate::http {

// Asks the reactor to report a peer's FIN as its own event bit (EPOLLRDHUP), so that a short
// read that came with the peer's end of stream is not taken for a drained socket. One epoll_ctl
// per connection; NoteDrained() does nothing on a socket without it. Returns false where not
// supported or if the reactor refused.
bool WatchPeerHangup(boost::asio::ip::tcp::socket& socket);

// True if the read just started on `socket` is waiting for the reactor (it was not completed
// by Asio's immediate attempt). False also where these hints are not supported.
bool ReadWasQueued(boost::asio::ip::tcp::socket& socket);

// Tells the reactor that `socket` has no bytes left: its next read waits for an event instead
// of trying first. Call only from a read's handler, under the contract above. Does nothing
// unless WatchPeerHangup() succeeded, or if the event being handled carries a hangup or an
// error (the end of stream or the error is then still to be read).
void NoteDrained(boost::asio::ip::tcp::socket& socket);

// True where the hints take effect (Boost 1.81's epoll reactor).
bool ReadReadinessHintsSupported();

}  // namespace keygate::http
