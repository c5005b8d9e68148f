// Socket errors that say this process (or the machine) is out of something, not that the peer
// failed: out of file descriptors, buffer space or memory. Retrying at once only repeats them;
// they are the gateway's shortage, not a provider's fault. Shared by the listener (which backs
// off on them) and the upstream client (which answers them 503, not 502).
//
// Thread safety: pure functions.
#pragma once

#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>

namespace keygate::http {

inline bool IsResourceExhaustion(const boost::system::error_code& ec) {
  namespace error = boost::asio::error;
  return ec == error::no_descriptors || ec == error::no_buffer_space || ec == error::no_memory;
}

}  // namespace keygate::http
