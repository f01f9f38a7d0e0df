// Turning typed packets into bytes.
#pragma once

#include <cstdint>
#include <vector>

#include "broker/mqtt/packet.h"
#include "broker/mqtt/result.h"

namespace starling::mqtt {

// Appends the encoding of `packet` for a connection of `version` to `out`
// (a CONNECT is encoded with its own version). Nothing is appended on error.
//
// For 3.1/3.1.1 the MQTT 5-only parts (properties, reason codes of
// acknowledgements, DISCONNECT reasons) are left out, and SUBACK failures and
// CONNACK codes are mapped to their 3.1.1 equivalents, so one message can be sent
// to clients of any version.
//
// Refuses what would make a malformed packet: a string longer than 65,535 bytes,
// a packet over the largest remaining length, a missing packet identifier, a
// property outside its packet, a reason code the packet may not carry, QoS 0
// with DUP, empty SUBSCRIBE/UNSUBSCRIBE lists.
Status encode(const Packet& packet, ProtocolVersion version, std::vector<uint8_t>& out);

// Appends a PUBLISH without its payload: the fixed header (whose remaining
// length counts the payload), topic, packet identifier and properties. The
// caller sends publish.payload right after, from wherever it lives, so a
// payload shared by many subscribers is never copied to be sent.
Status encode_publish_header(const Publish& publish, ProtocolVersion version, std::vector<uint8_t>& out);

}  // namespace starling::mqtt
