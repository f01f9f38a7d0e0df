#include "broker/net/host_port.h"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace starling::broker {

namespace {

bool parse_port(std::string_view text, std::uint16_t& port, std::string& error) {
  if (text.empty()) {
    error = "missing port";
    return false;
  }
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || text.size() > 5) {
    if (!text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
          return std::isdigit(c) != 0;
        })) {
      error = "port " + std::string{text} + " is out of range 0..65535";
    } else {
      error = "port '" + std::string{text} + "' is not a number";
    }
    return false;
  }
  if (value > 65535) {
    error = "port " + std::string{text} + " is out of range 0..65535";
    return false;
  }
  port = static_cast<std::uint16_t>(value);
  return true;
}

bool looks_like_ipv4(std::string_view host) {
  return std::all_of(host.begin(), host.end(),
                     [](unsigned char c) { return std::isdigit(c) != 0 || c == '.'; });
}

}  // namespace

std::string HostPort::to_string() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

bool HostPort::is_wildcard() const {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(host, ec);
  return !ec && address.is_unspecified();
}

bool is_valid_host_name(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);  // fully qualified
  if (name.empty() || name.size() > 253) return false;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    const std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (unsigned char c : label) {
      if (std::isalnum(c) == 0 && c != '-' && c != '_') return false;
    }
    start = dot + 1;
  }
  return true;
}

std::optional<HostPort> parse_host_port(std::string_view text, std::string& error) {
  HostPort result;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) {
      error = "missing ']' after IPv6 address";
      return std::nullopt;
    }
    result.host = std::string{text.substr(1, close - 1)};
    boost::system::error_code ec;
    boost::asio::ip::make_address_v6(result.host, ec);
    if (ec) {
      error = "'" + result.host + "' is not an IPv6 address";
      return std::nullopt;
    }
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      error = "missing ':PORT' after ']'";
      return std::nullopt;
    }
    port_text = text.substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      error = "expected HOST:PORT";
      return std::nullopt;
    }
    result.host = std::string{text.substr(0, colon)};
    port_text = text.substr(colon + 1);
    if (result.host.empty()) {
      error = "missing host (use 0.0.0.0 for all interfaces)";
      return std::nullopt;
    }
    if (result.host.find(':') != std::string::npos) {
      error = "an IPv6 address needs brackets, e.g. [::1]:1883";
      return std::nullopt;
    }
    if (looks_like_ipv4(result.host)) {
      boost::system::error_code ec;
      boost::asio::ip::make_address_v4(result.host, ec);
      if (ec) {
        error = "'" + result.host + "' is not an IPv4 address";
        return std::nullopt;
      }
    } else if (!is_valid_host_name(result.host)) {
      error = "'" + result.host + "' is not a valid host name";
      return std::nullopt;
    }
  }
  if (!parse_port(port_text, result.port, error)) return std::nullopt;
  return result;
}

}  // namespace starling::broker
