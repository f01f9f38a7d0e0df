#pragma once

// Opening a listening TCP socket for a configured HostPort. Port 0 asks the
// kernel for a free port; the result says which one it gave, so the node can
// log it and tests can run many nodes side by side.

#include <cstdint>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "broker/net/host_port.h"

namespace starling::broker {

struct ListenResult {
  std::optional<boost::asio::ip::tcp::acceptor> acceptor;  // listening, on success
  boost::asio::ip::tcp::endpoint endpoint;                  // as bound: real port
  std::string error;  // one line naming the address, on failure

  bool ok() const noexcept { return acceptor.has_value(); }
  std::uint16_t port() const noexcept { return endpoint.port(); }
};

// Resolves `address` (a host name may give several endpoints: the first that
// binds wins), binds with SO_REUSEADDR so a restarted node gets its port back
// at once, and listens. Blocking: call at startup, not on a busy worker.
ListenResult listen_on(const boost::asio::any_io_executor& executor, const HostPort& address);

}  // namespace starling::broker
