// Vocabulary types shared by every packet of the codec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace starling::mqtt {

enum class ProtocolVersion : uint8_t {
  kUnknown = 0,  // before CONNECT
  kV31 = 3,      // MQIsdp 3.1
  kV311 = 4,
  kV5 = 5,
};

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,  // MQTT 5 only
};

std::string_view packet_type_name(PacketType type);

enum class QoS : uint8_t { k0 = 0, k1 = 1, k2 = 2 };

// Read-only bytes owned elsewhere (binary data, payloads).
using ByteView = std::span<const uint8_t>;

// An immutable, reference-counted byte buffer. A decoded packet's strings and
// payload are views into one of these, so a PUBLISH payload is copied once, when
// its packet is taken off the socket, and shared by every delivery after that.
using SharedBytes = std::shared_ptr<const uint8_t[]>;

// Largest remaining length a 4-byte variable byte integer can express.
inline constexpr uint32_t kMaxRemainingLength = 268'435'455;
// Largest whole packet: 1 byte of type, 4 of length, then the rest.
inline constexpr uint32_t kMaxPacketSize = kMaxRemainingLength + 5;

}  // namespace starling::mqtt
