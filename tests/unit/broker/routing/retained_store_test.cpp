#include "broker/routing/retained_store.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace starling::broker {
namespace {

MessagePtr retained(const std::string& topic) {
  return make_message(topic, "x", mqtt::QoS::k1, true, {}, 0, nullptr, Clock::now());
}

std::vector<std::string> topics(const RetainedStore::Page& page) {
  std::vector<std::string> out;
  for (const auto& m : page.messages) out.push_back(m->topic);
  return out;
}

TEST(RetainedStore, PagesGoInTopicOrderFromWhereTheLastOneEnded) {
  RetainedStore store;
  for (const char* t : {"c", "a", "$SYS/x", "b/1", "b/2", "d"}) store.set(retained(t));
  const auto now = Clock::now();
  auto first = store.page("#", "", 2, now);
  EXPECT_EQ(topics(first), (std::vector<std::string>{"a", "b/1"}));
  EXPECT_TRUE(first.more);
  auto second = store.page("#", "b/1", 2, now);
  EXPECT_EQ(topics(second), (std::vector<std::string>{"b/2", "c"}));
  EXPECT_TRUE(second.more);
  auto last = store.page("#", "c", 2, now);
  EXPECT_EQ(topics(last), (std::vector<std::string>{"d"})) << "'#' leaves out $ topics [MQTT-4.7.2-1]";
  EXPECT_FALSE(last.more);
  // A topic cleared between pages is simply not there; the next page goes on after it.
  store.set(make_message("b/2", "", mqtt::QoS::k1, true, {}, 0, nullptr, now));
  EXPECT_EQ(topics(store.page("#", "b/1", 2, now)), (std::vector<std::string>{"c", "d"}));
}

}  // namespace
}  // namespace starling::broker
