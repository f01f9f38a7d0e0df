#pragma once

// A listen or peer address as written on the command line: "host:port",
// "[ipv6]:port". The host is kept as text (a name is resolved when used).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace starling::broker {

struct HostPort {
  std::string host;  // host name, IPv4 literal, or IPv6 literal without brackets
  std::uint16_t port = 0;

  // "host:port", with brackets around an IPv6 literal.
  std::string to_string() const;
  // 0.0.0.0 or :: (all interfaces).
  bool is_wildcard() const;

  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// Parses `text`; on failure returns std::nullopt and sets `error` to a short
// reason that does not repeat the text's origin (the caller names the flag).
std::optional<HostPort> parse_host_port(std::string_view text, std::string& error);

// A DNS host name (RFC 1123 labels; '_' tolerated as Docker uses it).
bool is_valid_host_name(std::string_view name);

}  // namespace starling::broker
