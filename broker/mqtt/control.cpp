// Wire format of PINGREQ, PINGRESP, DISCONNECT and AUTH (spec 3.12-3.15).
#include "broker/mqtt/control.h"

#include "broker/mqtt/packet_codec.h"

namespace starling::mqtt::detail {
namespace {

// DISCONNECT and AUTH: an empty body means Success and no properties; a reason
// code alone means no properties (3.14.2.1, 3.15.2.1).
template <class P>
Result<Packet> read_reason_and_properties(Reader& r, PacketType type, P p) {
  if (!r.at_end()) {
    uint8_t code = 0;
    MQTT_TRY(r.u8(code));
    p.reason_code = static_cast<ReasonCode>(code);
    if (!reason_allowed_in(p.reason_code, type))
      return Error{ReasonCode::kMalformedPacket, "reason code not allowed in this packet"};
    if (!r.at_end()) MQTT_TRY(read_properties(r, context_of(type), p.properties));
  }
  if (!r.at_end()) return kTrailingBytes;
  return Packet{std::move(p)};
}

}  // namespace

Result<Packet> decode_ping(PacketType type, uint8_t flags, Reader& r) {
  if (flags != 0) return kBadFlags;
  if (!r.at_end()) return kTrailingBytes;
  if (type == PacketType::kPingreq) return Packet{Pingreq{}};
  return Packet{Pingresp{}};
}

Result<Packet> decode_disconnect(uint8_t flags, Reader& r, ProtocolVersion version) {
  if (flags != 0) return kBadFlags;
  if (!is_v5(version)) {
    if (!r.at_end()) return kTrailingBytes;
    return Packet{Disconnect{}};
  }
  return read_reason_and_properties(r, PacketType::kDisconnect, Disconnect{});
}

Result<Packet> decode_auth(uint8_t flags, Reader& r, ProtocolVersion version) {
  if (!is_v5(version)) return Error{ReasonCode::kMalformedPacket, "AUTH before MQTT 5"};
  if (flags != 0) return kBadFlags;
  return read_reason_and_properties(r, PacketType::kAuth, Auth{});
}

Result<uint8_t> write_disconnect(const Disconnect& d, ProtocolVersion v, Writer& w) {
  if (!is_v5(v)) return uint8_t{0};
  if (!reason_allowed_in(d.reason_code, PacketType::kDisconnect))
    return Error{ReasonCode::kMalformedPacket, "reason code not allowed in DISCONNECT"};
  MQTT_TRY(check_properties_allowed(d.properties, PropertyContext::kDisconnect));
  const bool no_props = d.properties.empty();
  if (d.reason_code != ReasonCode::kSuccess || !no_props) w.u8(static_cast<uint8_t>(d.reason_code));
  if (!no_props) write_properties(d.properties, w);
  return uint8_t{0};
}

Result<uint8_t> write_auth(const Auth& a, ProtocolVersion v, Writer& w) {
  if (!is_v5(v)) return Error{ReasonCode::kProtocolError, "AUTH before MQTT 5"};
  if (!reason_allowed_in(a.reason_code, PacketType::kAuth))
    return Error{ReasonCode::kMalformedPacket, "reason code not allowed in AUTH"};
  MQTT_TRY(check_properties_allowed(a.properties, PropertyContext::kAuth));
  if (a.reason_code == ReasonCode::kSuccess && a.properties.empty()) return uint8_t{0};
  w.u8(static_cast<uint8_t>(a.reason_code));
  write_properties(a.properties, w);
  return uint8_t{0};
}

}  // namespace starling::mqtt::detail
