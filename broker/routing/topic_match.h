#pragma once

#include <string_view>

namespace starling::broker {

// Whether a (valid, non-shared) topic filter matches a topic name, by the rules
// of spec 4.7: '+' one level, '#' the parent and everything below, and no
// leading wildcard matching a topic that starts with '$' [MQTT-4.7.2-1].
// For one-off checks (retained messages on subscribe); the router uses the tree.
bool topic_matches(std::string_view filter, std::string_view topic);

}  // namespace starling::broker
