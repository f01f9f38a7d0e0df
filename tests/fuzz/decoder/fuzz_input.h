// How the decoder fuzzer reads its input: two bytes of settings, then the stream.
#pragma once

#include <cstdint>

#include "broker/mqtt/types.h"

namespace starling::mqtt::fuzz {

// byte 0: bits 0-1 the connection's version (unknown, 3.1, 3.1.1, 5);
//         bits 2-7 the size of the pieces the stream is fed in, 1..64.
// byte 1: the maximum packet size, 0 = none, else byte * 64.
inline ProtocolVersion version_of(uint8_t b) {
  constexpr ProtocolVersion kVersions[] = {ProtocolVersion::kUnknown, ProtocolVersion::kV31,
                                           ProtocolVersion::kV311, ProtocolVersion::kV5};
  return kVersions[b & 0x03];
}
inline size_t piece_size_of(uint8_t b) { return (b >> 2) + 1u; }
inline uint32_t max_packet_size_of(uint8_t b) { return b == 0 ? kMaxPacketSize : b * 64u; }

inline uint8_t settings_byte(ProtocolVersion v, size_t piece) {
  uint8_t bits = v == ProtocolVersion::kV31 ? 1 : v == ProtocolVersion::kV311 ? 2 : v == ProtocolVersion::kV5 ? 3 : 0;
  return static_cast<uint8_t>(bits | ((piece - 1) << 2));
}

}  // namespace starling::mqtt::fuzz
