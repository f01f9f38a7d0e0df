// PINGREQ, PINGRESP, DISCONNECT and AUTH (spec 3.12-3.15).
#pragma once

#include "broker/mqtt/properties.h"
#include "broker/mqtt/reason_code.h"

namespace starling::mqtt {

struct Pingreq {
  friend bool operator==(const Pingreq&, const Pingreq&) = default;
};

struct Pingresp {
  friend bool operator==(const Pingresp&, const Pingresp&) = default;
};

struct Disconnect {
  ReasonCode reason_code = ReasonCode::kSuccess;  // MQTT 5 only
  Properties properties;                          // MQTT 5 only
  friend bool operator==(const Disconnect&, const Disconnect&) = default;
};

// MQTT 5 only.
struct Auth {
  ReasonCode reason_code = ReasonCode::kSuccess;
  Properties properties;
  friend bool operator==(const Auth&, const Auth&) = default;
};

}  // namespace starling::mqtt
