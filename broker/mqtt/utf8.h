#pragma once

#include <string_view>

namespace starling::mqtt {

// An MQTT UTF-8 Encoded String (spec 1.5.4): well-formed UTF-8 (no overlong
// forms, nothing above U+10FFFF), no UTF-16 surrogates U+D800..U+DFFF
// [MQTT-1.5.4-1] and no U+0000 [MQTT-1.5.4-2].
bool is_valid_mqtt_utf8(std::string_view s);

}  // namespace starling::mqtt
