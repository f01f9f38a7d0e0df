// Topic names, topic filters and shared subscription filters (spec 4.7, 4.8.2).
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/mqtt/topic.h"

using namespace starling::mqtt;

namespace {

// A topic name is at least one character long [MQTT-4.7.3-1] and has no
// wildcard characters [MQTT-3.3.2-2]. Empty levels, spaces and a leading '$'
// are allowed.
TEST(TopicName, ValidNamesAccepted) {
  for (std::string_view t : {"a", "a/b", "/", "/a", "a/", "a//b", "//", "$SYS/broker",
                             "sport/tennis/player1", "a b", " ", "é/€", "$share/g/a"}) {
    SCOPED_TRACE(std::string(t));
    EXPECT_TRUE(validate_topic_name(t).ok());
  }
}

TEST(TopicName, MaximumLengthAccepted) {
  std::string t(65535, 'a');
  EXPECT_TRUE(validate_topic_name(t).ok());
}

TEST(TopicName, EmptyRefused) { EXPECT_FALSE(validate_topic_name("").ok()); }

TEST(TopicName, WildcardsRefused) {
  for (std::string_view t : {"+", "#", "a/+", "a/#", "+/a", "#/a", "a+b", "a#", "a/b/+/c", "$SYS/#"}) {
    SCOPED_TRACE(std::string(t));
    EXPECT_FALSE(validate_topic_name(t).ok());
  }
}

// '#' only alone or after '/', and only last [MQTT-4.7.1-1]; '+' only as a whole
// level [MQTT-4.7.1-2]; empty levels are allowed (4.7.1.1).
TEST(TopicFilter, ValidFiltersAccepted) {
  for (std::string_view f :
       {"#", "+", "a/+/b", "+/+", "/", "a//b", "a", "a/b", "a/#", "/#", "+/#", "+/", "/+",
        "sport/tennis/+", "sport/+/player1", "+/+/+", "$SYS/#", "$SYS/+", "a b/+", "é/+/€"}) {
    SCOPED_TRACE(std::string(f));
    EXPECT_TRUE(validate_topic_filter(f).ok());
  }
}

TEST(TopicFilter, MisplacedWildcardsRefused) {
  for (std::string_view f : {"a/#/b", "a#", "a/b+", "+a", "#/a", "##", "a/##", "++", "a/+b/c",
                             "a/b#", "#+", "+#", "sport/tennis#", "sport+"}) {
    SCOPED_TRACE(std::string(f));
    EXPECT_FALSE(validate_topic_filter(f).ok());
  }
}

// At least one character [MQTT-4.7.3-1].
TEST(TopicFilter, EmptyRefused) { EXPECT_FALSE(validate_topic_filter("").ok()); }

TEST(TopicFilter, MaximumLengthAccepted) {
  std::string f(65533, 'a');
  f += "/#";
  EXPECT_TRUE(validate_topic_filter(f).ok());
}

// $share/{ShareName}/{filter}: the share name is at least one character
// [MQTT-4.8.2-1] and has no '/', '+' or '#' [MQTT-4.8.2-2]; the filter after it
// is a valid, non-empty topic filter.
TEST(TopicFilter, ValidSharedFiltersAccepted) {
  for (std::string_view f : {"$share/g/#", "$share/g/+", "$share/g/a", "$share/g/a/b",
                             "$share/group1/sport/+/player", "$share/g//", "$share/g/+/+",
                             "$share/g/$SYS/#"}) {
    SCOPED_TRACE(std::string(f));
    EXPECT_TRUE(validate_topic_filter(f).ok());
  }
}

TEST(TopicFilter, InvalidSharedFiltersRefused) {
  for (std::string_view f : {"$share/g", "$share//a", "$share/g+/a", "$share/+/a", "$share/#/a",
                             "$share/g#/a", "$share/", "$share/g/", "$share//", "$share/g/a#",
                             "$share/g/a/#/b"}) {
    SCOPED_TRACE(std::string(f));
    EXPECT_FALSE(validate_topic_filter(f).ok());
  }
}

// Filters that only look like shared ones are ordinary filters.
TEST(TopicFilter, NearlySharedFiltersAreOrdinary) {
  for (std::string_view f : {"$sharex/a", "$SHARE/g/a", "share/g/a", "$shar/g/a", "a/$share/g/b"}) {
    SCOPED_TRACE(std::string(f));
    EXPECT_TRUE(validate_topic_filter(f).ok());
    EXPECT_FALSE(parse_shared_filter(f).has_value());
  }
}

TEST(SharedFilter, SplitsGroupAndFilter) {
  struct Case {
    std::string_view in, group, filter;
  };
  for (const Case& c : {Case{"$share/g/a/b", "g", "a/b"}, Case{"$share/grp/#", "grp", "#"},
                        Case{"$share/g/+", "g", "+"}, Case{"$share/consumer1/sport/tennis/+",
                                                           "consumer1", "sport/tennis/+"},
                        Case{"$share/g//a", "g", "/a"}, Case{"$share/g/$SYS/x", "g", "$SYS/x"}}) {
    SCOPED_TRACE(std::string(c.in));
    ASSERT_TRUE(validate_topic_filter(c.in).ok());
    std::optional<SharedFilter> s = parse_shared_filter(c.in);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->group, c.group);
    EXPECT_EQ(s->filter, c.filter);
    // The parts are views into the input.
    EXPECT_GE(s->group.data(), c.in.data());
    EXPECT_LE(s->filter.data() + s->filter.size(), c.in.data() + c.in.size());
  }
}

TEST(SharedFilter, OrdinaryFiltersAreNotShared) {
  for (std::string_view f : {"a/b", "#", "+", "/", "$SYS/#", "a/$share/g/b"}) {
    SCOPED_TRACE(std::string(f));
    EXPECT_FALSE(parse_shared_filter(f).has_value());
  }
}

}  // namespace
