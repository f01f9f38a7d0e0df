#include "broker/net/host_port.h"

#include <gtest/gtest.h>

#include <string>

namespace starling::broker {
namespace {

std::optional<HostPort> parse(std::string_view text) {
  std::string error;
  auto result = parse_host_port(text, error);
  EXPECT_EQ(result.has_value(), error.empty()) << text << ": " << error;
  return result;
}

TEST(HostPort, ParsesIpv4Ipv6AndNames) {
  EXPECT_EQ(parse("0.0.0.0:1883"), (HostPort{"0.0.0.0", 1883}));
  EXPECT_EQ(parse("127.0.0.1:0"), (HostPort{"127.0.0.1", 0}));
  EXPECT_EQ(parse("[::]:65535"), (HostPort{"::", 65535}));
  EXPECT_EQ(parse("[fe80::1%lo]:1"), (HostPort{"fe80::1%lo", 1}));
  EXPECT_EQ(parse("localhost:8080"), (HostPort{"localhost", 8080}));
  EXPECT_EQ(parse("starling-0.starling.default.svc:7000"),
            (HostPort{"starling-0.starling.default.svc", 7000}));
}

TEST(HostPort, RejectsMalformedAddresses) {
  for (const char* text : {"", "1883", ":1883", "host:", "host:-1", "host:65536", "host:1x",
                           "host:+1", "::1:1883", "[::1]", "[::1]1883", "[::1:1883", "[xyz]:1",
                           "1.2.3:1", "256.0.0.1:1", "-host:1", "ho st:1", "a..b:1",
                           "host:0000001883"}) {
    std::string error;
    EXPECT_FALSE(parse_host_port(text, error)) << text;
    EXPECT_FALSE(error.empty()) << text;
  }
}

TEST(HostPort, FormatsWithBracketsForIpv6) {
  EXPECT_EQ((HostPort{"::1", 1883}).to_string(), "[::1]:1883");
  EXPECT_EQ((HostPort{"example.com", 80}).to_string(), "example.com:80");
  EXPECT_TRUE((HostPort{"0.0.0.0", 1}).is_wildcard());
  EXPECT_TRUE((HostPort{"::", 1}).is_wildcard());
  EXPECT_FALSE((HostPort{"localhost", 1}).is_wildcard());
}

}  // namespace
}  // namespace starling::broker
