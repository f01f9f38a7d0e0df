#include "broker/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace starling::broker {
namespace {

TEST(Metrics, SerializesConnectionsCounter) {
  Metrics metrics;
  std::string text = metrics.serialize();
  EXPECT_NE(text.find("# TYPE starling_connections_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("\nstarling_connections_total 0"), std::string::npos) << text;

  metrics.connections_total().Increment();
  metrics.connections_total().Increment();
  text = metrics.serialize();
  EXPECT_NE(text.find("\nstarling_connections_total 2"), std::string::npos) << text;
}

}  // namespace
}  // namespace starling::broker
