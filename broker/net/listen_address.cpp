#include "broker/net/listen_address.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <vector>

namespace starling::broker {

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// Tries one endpoint; on failure leaves `error` set and the acceptor closed.
bool try_listen(tcp::acceptor& acceptor, const tcp::endpoint& endpoint,
                boost::system::error_code& error) {
  acceptor.open(endpoint.protocol(), error);
  if (error) return false;
  acceptor.set_option(tcp::acceptor::reuse_address(true), error);
  if (!error) acceptor.bind(endpoint, error);
  if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (!error) return true;
  boost::system::error_code ignored;
  acceptor.close(ignored);
  return false;
}

}  // namespace

ListenResult listen_on(const asio::any_io_executor& executor, const HostPort& address) {
  ListenResult result;
  const std::string where = "cannot listen on " + address.to_string() + ": ";

  std::vector<tcp::endpoint> candidates;
  boost::system::error_code error;
  const auto literal = asio::ip::make_address(address.host, error);
  if (!error) {
    candidates.emplace_back(literal, address.port);
  } else {
    tcp::resolver resolver{executor};
    const auto resolved = resolver.resolve(address.host, std::to_string(address.port),
                                           tcp::resolver::passive, error);
    if (error) {
      result.error = where + "cannot resolve " + address.host + ": " + error.message();
      return result;
    }
    for (const auto& entry : resolved) candidates.push_back(entry.endpoint());
  }

  tcp::acceptor acceptor{executor};
  for (const auto& endpoint : candidates) {
    if (try_listen(acceptor, endpoint, error)) {
      result.endpoint = acceptor.local_endpoint(error);
      if (error) break;
      result.acceptor.emplace(std::move(acceptor));
      return result;
    }
  }
  result.error = where + (candidates.empty() ? std::string{"no address"} : error.message());
  return result;
}

void AcceptRetry::after_failure(const boost::asio::any_io_executor& executor, spdlog::logger& log,
                                std::string_view listener, const boost::system::error_code& error,
                                std::function<void()> again) {
  if (const auto now = std::chrono::steady_clock::now(); now - last_warning_ >= std::chrono::seconds(10)) {
    last_warning_ = now;
    log.warn("{} listener: accept failed: {}; retrying every 100 ms", listener, error.message());
  }
  auto timer = std::make_shared<boost::asio::steady_timer>(executor, std::chrono::milliseconds(100));
  timer->async_wait([timer, again = std::move(again)](boost::system::error_code wait) {
    if (!wait) again();
  });
}

}  // namespace starling::broker
