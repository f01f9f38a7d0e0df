#include "broker/stored_message.h"

#include <cstring>

#include <gtest/gtest.h>

namespace starling::broker {
namespace {

using namespace std::chrono_literals;

MessagePtr sample(const ClockPair& now) {
  const std::string raw = "payload-bytestext/plainreply/toabcdkv";
  auto backing = std::make_shared_for_overwrite<uint8_t[]>(raw.size());
  std::memcpy(backing.get(), raw.data(), raw.size());
  const std::string_view all(reinterpret_cast<const char*>(backing.get()), raw.size());
  mqtt::Properties props;
  props.payload_format_indicator = 1;
  props.content_type = all.substr(13, 10);
  props.response_topic = all.substr(23, 8);
  props.correlation_data = all.substr(31, 4);
  props.user_properties.push_back({all.substr(35, 1), all.substr(36, 1)});
  props.message_expiry_interval = 60;
  return make_message("a/b", all.substr(0, 13), mqtt::QoS::k1, true, props, 7, backing, now.steady);
}

TEST(StoredMessage, RoundTripsWithItsProperties) {
  const ClockPair now;
  const MessagePtr m = sample(now);
  auto back = from_stored(to_stored(*m, now), now);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->topic, "a/b");
  EXPECT_EQ(back->payload, "payload-bytes");
  EXPECT_EQ(back->qos, mqtt::QoS::k1);
  EXPECT_TRUE(back->retain);
  ASSERT_NE(back->properties, nullptr);
  EXPECT_EQ(*back->properties, *m->properties);
  ASSERT_TRUE(back->expires_at.has_value());
  // Through wall-clock milliseconds and back: the same deadline, to the millisecond.
  EXPECT_LE(std::chrono::abs(*back->expires_at - *m->expires_at), 2ms);
}

TEST(StoredMessage, ExpiryCountsAcrossARestart) {
  const ClockPair then;
  const auto stored = to_stored(*sample(then), then);
  // "Restarted" 50 s later: a new steady clock origin, 10 s left.
  ClockPair later;
  later.steady = Clock::time_point{} + 1000s;
  later.wall = then.wall + 50s;
  auto back = from_stored(stored, later);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->remaining_expiry(later.steady), 10u);
  EXPECT_FALSE(back->expired(later.steady));
  EXPECT_TRUE(back->expired(later.steady + 11s));
}

TEST(StoredMessage, WithoutPropertiesOrExpiry) {
  const ClockPair now;
  auto m = make_message("t", "", mqtt::QoS::k0, false, {}, 0, nullptr, now.steady);
  const auto stored = to_stored(*m, now);
  EXPECT_TRUE(stored.properties.empty());
  EXPECT_EQ(stored.expires_at_ms, 0);
  auto back = from_stored(stored, now);
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->properties, nullptr);
  EXPECT_FALSE(back->expires_at.has_value());
  EXPECT_TRUE(back->payload.empty());
}

TEST(StoredMessage, DamagedPropertiesAreRefused) {
  const ClockPair now;
  auto stored = to_stored(*sample(now), now);
  stored.properties.back() ^= 0x7f;  // a length or id no longer adds up
  stored.properties.push_back('\x42');
  EXPECT_EQ(from_stored(stored, now), nullptr);
}

}  // namespace
}  // namespace starling::broker
