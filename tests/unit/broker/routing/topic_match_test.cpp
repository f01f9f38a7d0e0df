#include "broker/routing/topic_match.h"

#include <gtest/gtest.h>

namespace starling::broker {
namespace {

TEST(TopicMatches, Matrix) {
  struct Case {
    const char* filter;
    const char* topic;
    bool match;
  };
  const Case cases[] = {
      {"a/b", "a/b", true},     {"a/b", "a/c", false},     {"a/+", "a/b", true},      {"a/+", "a/b/c", false},
      {"a/+", "a/", true},      {"a/#", "a", true},        {"a/#", "a/b/c", true},    {"#", "a/b", true},
      {"#", "$SYS/x", false},   {"+/x", "$SYS/x", false},  {"$SYS/#", "$SYS/x", true}, {"+", "/", false},
      {"+/+", "/", true},       {"/+", "/a", true},        {"a", "a/b", false},       {"a/b", "a", false},
      {"a//b", "a//b", true},   {"a/+/b", "a//b", true},   {"+/#", "a", true},        {"sport/#", "sport", true},
  };
  for (const Case& c : cases) EXPECT_EQ(topic_matches(c.filter, c.topic), c.match) << c.filter << " vs " << c.topic;
}

}  // namespace
}  // namespace starling::broker
