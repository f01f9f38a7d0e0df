// Topic names and topic filters (spec 4.7), and shared subscriptions (4.8.2).
#pragma once

#include <optional>
#include <string_view>

#include "broker/mqtt/result.h"

namespace starling::mqtt {

// A topic name to publish to: at least one character, no '+' or '#'
// [MQTT-3.3.2-2], at most 65,535 bytes as every MQTT string [MQTT-1.5.4-1]
// (which only a string from elsewhere than the wire can break: another
// node's). UTF-8 well-formedness is checked when the string is decoded.
Status validate_topic_name(std::string_view topic);

// A topic filter to subscribe with: at least one character [MQTT-4.7.3-1], at
// most 65,535 bytes, '#'
// only as the whole last level [MQTT-4.7.1-1], '+' only as a whole level
// [MQTT-4.7.1-2]. A $share/GROUP/FILTER filter needs a non-empty group without
// '/', '+' or '#', and a valid filter after it [MQTT-4.8.2-1], [MQTT-4.8.2-2].
// $share is read as a shared subscription for every protocol version: Starling
// offers them to 3.1.1 clients too, as Mosquitto, EMQX and HiveMQ do.
Status validate_topic_filter(std::string_view filter);

struct SharedFilter {
  std::string_view group;
  std::string_view filter;
};

// Splits "$share/GROUP/FILTER"; nullopt for a filter that is not shared.
// Assumes the filter passed validate_topic_filter.
std::optional<SharedFilter> parse_shared_filter(std::string_view filter);

}  // namespace starling::mqtt
