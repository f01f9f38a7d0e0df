// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (spec 3.8-3.11).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "broker/mqtt/properties.h"
#include "broker/mqtt/reason_code.h"
#include "broker/mqtt/result.h"
#include "broker/mqtt/types.h"

namespace starling::mqtt {

enum class RetainHandling : uint8_t {
  kSendOnSubscribe = 0,
  kSendOnNewSubscribe = 1,
  kDoNotSend = 2,
};

struct SubscriptionOptions {
  QoS qos = QoS::k0;
  bool no_local = false;             // MQTT 5
  bool retain_as_published = false;  // MQTT 5
  RetainHandling retain_handling = RetainHandling::kSendOnSubscribe;  // MQTT 5
  friend bool operator==(const SubscriptionOptions&, const SubscriptionOptions&) = default;
};

// The options byte of a SUBSCRIBE (MQTT 5 layout), and back: for storing a
// subscription. parse_options_byte fails on reserved bits, QoS 3 or retain
// handling 3.
uint8_t options_byte(const SubscriptionOptions& options);
Result<SubscriptionOptions> parse_options_byte(uint8_t byte);

struct Subscription {
  std::string_view filter;  // may be $share/GROUP/FILTER
  SubscriptionOptions options;
  friend bool operator==(const Subscription&, const Subscription&) = default;
};

struct Subscribe {
  uint16_t packet_id = 0;
  std::vector<Subscription> subscriptions;
  Properties properties;
  friend bool operator==(const Subscribe&, const Subscribe&) = default;
};

struct Suback {
  uint16_t packet_id = 0;
  // One per subscription: granted QoS (0x00-0x02) or a failure code. In 3.1.1
  // every failure is 0x80.
  std::vector<ReasonCode> reason_codes;
  Properties properties;
  friend bool operator==(const Suback&, const Suback&) = default;
};

struct Unsubscribe {
  uint16_t packet_id = 0;
  std::vector<std::string_view> filters;
  Properties properties;
  friend bool operator==(const Unsubscribe&, const Unsubscribe&) = default;
};

struct Unsuback {
  uint16_t packet_id = 0;
  std::vector<ReasonCode> reason_codes;  // MQTT 5 only; empty before
  Properties properties;
  friend bool operator==(const Unsuback&, const Unsuback&) = default;
};

}  // namespace starling::mqtt
