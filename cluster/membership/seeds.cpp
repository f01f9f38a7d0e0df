#include "cluster/membership/seeds.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>

namespace starling::cluster {
namespace {

void look_up(const broker::HostPort& target, std::vector<std::string>& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(target.host.c_str(), nullptr, &hints, &found) != 0) return;
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner{found, &::freeaddrinfo};
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      if (!::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text)) continue;
      out.push_back(broker::HostPort{text, target.port}.to_string());
    } else if (a->ai_family == AF_INET6) {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
      if (!::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text)) continue;
      out.push_back(broker::HostPort{text, target.port}.to_string());
    }
  }
}

}  // namespace

std::vector<std::string> resolve_seeds(const std::vector<broker::JoinSeed>& seeds) {
  std::vector<std::string> out;
  for (const auto& seed : seeds) {
    if (seed.kind == broker::JoinSeed::Kind::dns) {
      look_up(seed.target, out);
    } else {
      out.push_back(seed.target.to_string());
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace starling::cluster
