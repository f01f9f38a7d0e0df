#include "broker/http/request_target.h"

#include <gtest/gtest.h>

namespace starling::broker {
namespace {

TEST(RequestTarget, SplitsAndDecodesPathAndQuery) {
  const auto t = parse_request_target("/api/v1/clients/a%2Fb%20c?limit=10&prefix=dev+1&after=x%26y&flag");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->segments, (std::vector<std::string>{"api", "v1", "clients", "a/b c"}));
  EXPECT_EQ(t->param("limit"), "10");
  EXPECT_EQ(t->param("prefix"), "dev 1");
  EXPECT_EQ(t->param("after"), "x&y");
  EXPECT_TRUE(t->has("flag"));
  EXPECT_EQ(t->param("missing", "fallback"), "fallback");
}

TEST(RequestTarget, PlusIsASpaceOnlyInTheQuery) {
  const auto t = parse_request_target("/a+b?q=a+b");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->segments[0], "a+b");
  EXPECT_EQ(t->param("q"), "a b");
}

TEST(RequestTarget, EmptySegmentsAreSkipped) {
  const auto t = parse_request_target("//metrics/");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->segments, (std::vector<std::string>{"metrics"}));
  EXPECT_TRUE(parse_request_target("/")->segments.empty());
}

TEST(RequestTarget, RefusesBrokenEscapesAndNonPaths) {
  EXPECT_FALSE(parse_request_target("/a%2"));
  EXPECT_FALSE(parse_request_target("/a%zz"));
  EXPECT_FALSE(parse_request_target("/?q=%"));
  EXPECT_FALSE(parse_request_target("http://host/x"));
  EXPECT_FALSE(parse_request_target(""));
}

}  // namespace
}  // namespace starling::broker
