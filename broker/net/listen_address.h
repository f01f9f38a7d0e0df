#pragma once

// Opening a listening TCP socket for a configured HostPort. Port 0 asks the
// kernel for a free port; the result says which one it gave, so the node can
// log it and tests can run many nodes side by side.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <spdlog/logger.h>

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

// What a listener does when an accept fails (out of file descriptors, say):
// retrying at once would spin its thread, so it waits 100 ms, and the log
// hears of it at most every 10 s. One per listener (or group of them), used
// on its own thread.
class AcceptRetry {
 public:
  // Logs `error` (rate-limited) and runs `again` on `executor` 100 ms later.
  void after_failure(const boost::asio::any_io_executor& executor, spdlog::logger& log, std::string_view listener,
                     const boost::system::error_code& error, std::function<void()> again);

 private:
  std::chrono::steady_clock::time_point last_warning_{};
};

}  // namespace starling::broker
