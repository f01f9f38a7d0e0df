// Internal: the per-packet-family decode and encode functions that decoder.cpp
// and encoder.cpp dispatch to. Not part of the codec's public API.
#pragma once

#include "broker/mqtt/packet.h"
#include "broker/mqtt/wire.h"

namespace starling::mqtt::detail {

// Properties (properties.cpp): the length-prefixed property section.
Status read_properties(Reader& r, PropertyContext ctx, Properties& out);
void write_properties(const Properties& props, Writer& w);
PropertyContext context_of(PacketType type);

// The optional tail of PUBACK..PUBCOMP and DISCONNECT in MQTT 5: a reason code,
// then properties; either may be left out (3.4.2.1, 3.14.2.1). Reading checks
// the code is allowed in `type`; writing picks the shortest form.
Status read_reason_and_properties(Reader& r, PacketType type, ReasonCode& code, Properties& props);
void write_reason_and_properties(ReasonCode code, const Properties& props, Writer& w);

// Each decode_* gets the low nibble of the first byte and the body. They check
// everything the packet alone can tell; `version` is the connection's.
Result<Packet> decode_connect(uint8_t flags, Reader& r);
Result<Packet> decode_connack(uint8_t flags, Reader& r, ProtocolVersion version);
Result<Packet> decode_publish(uint8_t flags, Reader& r, ProtocolVersion version);
Result<Packet> decode_pub_response(PacketType type, uint8_t flags, Reader& r, ProtocolVersion version);
Result<Packet> decode_subscribe(uint8_t flags, Reader& r, ProtocolVersion version);
Result<Packet> decode_suback(uint8_t flags, Reader& r, ProtocolVersion version);
Result<Packet> decode_unsubscribe(uint8_t flags, Reader& r, ProtocolVersion version);
Result<Packet> decode_unsuback(uint8_t flags, Reader& r, ProtocolVersion version);
Result<Packet> decode_ping(PacketType type, uint8_t flags, Reader& r);
Result<Packet> decode_disconnect(uint8_t flags, Reader& r, ProtocolVersion version);
Result<Packet> decode_auth(uint8_t flags, Reader& r, ProtocolVersion version);

// Each write_* validates the packet, then writes its variable header and payload
// into `w` (which may only be counting). The return value is the low nibble of
// the first byte (the flags).
Result<uint8_t> write_connect(const Connect& p, Writer& w);
Result<uint8_t> write_connack(const Connack& p, ProtocolVersion v, Writer& w);
Result<uint8_t> write_publish(const Publish& p, ProtocolVersion v, Writer& w, bool with_payload = true);
template <PacketType kType>
Result<uint8_t> write_pub_response(const PubResponse<kType>& p, ProtocolVersion v, Writer& w);
Result<uint8_t> write_subscribe(const Subscribe& p, ProtocolVersion v, Writer& w);
Result<uint8_t> write_suback(const Suback& p, ProtocolVersion v, Writer& w);
Result<uint8_t> write_unsubscribe(const Unsubscribe& p, ProtocolVersion v, Writer& w);
Result<uint8_t> write_unsuback(const Unsuback& p, ProtocolVersion v, Writer& w);
Result<uint8_t> write_disconnect(const Disconnect& p, ProtocolVersion v, Writer& w);
Result<uint8_t> write_auth(const Auth& p, ProtocolVersion v, Writer& w);

// Shared checks.
constexpr bool is_v5(ProtocolVersion v) { return v == ProtocolVersion::kV5; }
inline constexpr Error kPacketIdZero{ReasonCode::kMalformedPacket, "packet identifier 0"};
inline constexpr Error kBadFlags{ReasonCode::kMalformedPacket, "reserved flag bits set wrong"};
inline constexpr Error kTrailingBytes{ReasonCode::kMalformedPacket, "bytes left after the packet's fields"};
Status check_properties_for(const Properties& props, PropertyContext ctx, ProtocolVersion v);

}  // namespace starling::mqtt::detail
