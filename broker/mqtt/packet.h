// Any MQTT control packet, as a typed value.
#pragma once

#include <variant>

#include "broker/mqtt/connect.h"
#include "broker/mqtt/control.h"
#include "broker/mqtt/publish.h"
#include "broker/mqtt/subscribe.h"

namespace starling::mqtt {

// Alternatives in packet type order, so index() + 1 is the packet type.
using Packet = std::variant<Connect, Connack, Publish, Puback, Pubrec, Pubrel, Pubcomp,
                            Subscribe, Suback, Unsubscribe, Unsuback, Pingreq, Pingresp,
                            Disconnect, Auth>;

inline PacketType type_of(const Packet& p) {
  return static_cast<PacketType>(p.index() + 1);
}

// A decoded packet and the buffer its strings and payload point into. Keep
// `backing` for as long as any view of `packet` is used (a PUBLISH payload that is
// queued, say). It is empty when the packet holds no views.
struct Decoded {
  Packet packet;
  SharedBytes backing;
};

}  // namespace starling::mqtt
