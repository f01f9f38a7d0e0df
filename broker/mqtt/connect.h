// CONNECT and CONNACK (spec 3.1, 3.2).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "broker/mqtt/properties.h"
#include "broker/mqtt/types.h"

namespace starling::mqtt {

struct Will {
  std::string_view topic;
  std::string_view payload;  // binary
  QoS qos = QoS::k0;
  bool retain = false;
  Properties properties;  // MQTT 5 will properties
  friend bool operator==(const Will&, const Will&) = default;
};

struct Connect {
  ProtocolVersion version = ProtocolVersion::kV311;
  std::string_view client_id;
  bool clean_start = true;  // "clean session" before MQTT 5
  uint16_t keep_alive = 0;  // seconds
  std::optional<Will> will;
  std::optional<std::string_view> username;
  std::optional<std::string_view> password;  // binary
  Properties properties;
  friend bool operator==(const Connect&, const Connect&) = default;
};

struct Connack {
  bool session_present = false;
  // MQTT 5 reason code; for 3.1/3.1.1 the return code maps onto the MQTT 5 code
  // of the same meaning (see connack_v3_return_code).
  ReasonCode reason_code = ReasonCode::kSuccess;
  Properties properties;
  friend bool operator==(const Connack&, const Connack&) = default;
};

}  // namespace starling::mqtt
