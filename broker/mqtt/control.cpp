// Wire format of PINGREQ, PINGRESP, DISCONNECT and AUTH (spec 3.12-3.15).
#include "broker/mqtt/control.h"

#include "broker/mqtt/packet_codec.h"

namespace starling::mqtt::detail {

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
  Disconnect d;
  MQTT_TRY(read_reason_and_properties(r, PacketType::kDisconnect, d.reason_code, d.properties));
  if (!r.at_end()) return kTrailingBytes;
  return Packet{std::move(d)};
}

Result<Packet> decode_auth(uint8_t flags, Reader& r, ProtocolVersion version) {
  if (!is_v5(version)) return Error{ReasonCode::kMalformedPacket, "AUTH before MQTT 5"};
  if (flags != 0) return kBadFlags;
  Auth a;
  MQTT_TRY(read_reason_and_properties(r, PacketType::kAuth, a.reason_code, a.properties));
  if (!r.at_end()) return kTrailingBytes;
  return Packet{std::move(a)};
}

Result<uint8_t> write_disconnect(const Disconnect& d, ProtocolVersion v, Writer& w) {
  if (!is_v5(v)) return uint8_t{0};
  if (!reason_allowed_in(d.reason_code, PacketType::kDisconnect))
    return Error{ReasonCode::kMalformedPacket, "reason code not allowed in DISCONNECT"};
  MQTT_TRY(check_properties_allowed(d.properties, PropertyContext::kDisconnect));
  write_reason_and_properties(d.reason_code, d.properties, w);
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
