// PUBLISH and its acknowledgements PUBACK, PUBREC, PUBREL, PUBCOMP (spec 3.3-3.7).
#pragma once

#include <cstdint>
#include <string_view>

#include "broker/mqtt/properties.h"
#include "broker/mqtt/types.h"

namespace starling::mqtt {

struct Publish {
  std::string_view topic;  // empty when an MQTT 5 topic alias stands for it
  std::string_view payload;
  QoS qos = QoS::k0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;  // QoS 1 and 2 only
  Properties properties;
  friend bool operator==(const Publish&, const Publish&) = default;
};

// The four acknowledgements share one shape; the type parameter keeps them apart.
template <PacketType kType>
struct PubResponse {
  static constexpr PacketType type = kType;
  uint16_t packet_id = 0;
  ReasonCode reason_code = ReasonCode::kSuccess;  // MQTT 5 only
  Properties properties;                          // MQTT 5 only
  friend bool operator==(const PubResponse&, const PubResponse&) = default;
};

using Puback = PubResponse<PacketType::kPuback>;
using Pubrec = PubResponse<PacketType::kPubrec>;
using Pubrel = PubResponse<PacketType::kPubrel>;
using Pubcomp = PubResponse<PacketType::kPubcomp>;

}  // namespace starling::mqtt
