#include "broker/net/listen_address.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/socket_base.hpp>

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

}  // namespace starling::broker
