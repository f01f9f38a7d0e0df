// Wire format of PUBLISH, PUBACK, PUBREC, PUBREL and PUBCOMP (spec 3.3-3.7).
#include "broker/mqtt/publish.h"

#include "broker/mqtt/packet_codec.h"
#include "broker/mqtt/topic.h"

namespace starling::mqtt::detail {
namespace {

enum PublishFlag : uint8_t { kRetain = 0x01, kQosShift = 1, kDup = 0x08 };

// Only PUBREL has flags: 0b0010 [MQTT-3.6.1-1].
constexpr uint8_t response_flags(PacketType type) { return type == PacketType::kPubrel ? 0x02 : 0x00; }

template <PacketType kType>
Result<Packet> read_response(Reader& r, ProtocolVersion version) {
  PubResponse<kType> p;
  MQTT_TRY(r.u16(p.packet_id));
  if (p.packet_id == 0) return kPacketIdZero;
  if (is_v5(version)) MQTT_TRY(read_reason_and_properties(r, kType, p.reason_code, p.properties));
  if (!r.at_end()) return kTrailingBytes;
  return Packet{std::move(p)};
}

}  // namespace

Result<Packet> decode_publish(uint8_t flags, Reader& r, ProtocolVersion version) {
  Publish p;
  const uint8_t qos = (flags >> kQosShift) & 0x03;
  if (qos == 3) return Error{ReasonCode::kMalformedPacket, "PUBLISH with QoS 3"};  // [MQTT-3.3.1-4]
  p.qos = static_cast<QoS>(qos);
  p.dup = (flags & kDup) != 0;
  p.retain = (flags & kRetain) != 0;
  if (p.dup && p.qos == QoS::k0) return Error{ReasonCode::kMalformedPacket, "DUP set on QoS 0"};  // [MQTT-3.3.1-2]
  MQTT_TRY(r.string(p.topic));
  if (p.qos != QoS::k0) {
    MQTT_TRY(r.u16(p.packet_id));
    if (p.packet_id == 0) return kPacketIdZero;  // [MQTT-2.2.1-3]
  }
  if (is_v5(version)) MQTT_TRY(read_properties(r, PropertyContext::kPublish, p.properties));
  if (p.topic.empty()) {
    // MQTT 5 lets a topic alias stand for the topic name (3.3.2.3.4).
    if (!is_v5(version)) return Error{ReasonCode::kMalformedPacket, "empty topic name"};
    if (!p.properties.topic_alias)
      return Error{ReasonCode::kProtocolError, "empty topic name without a topic alias"};
  } else {
    MQTT_TRY(validate_topic_name(p.topic));
  }
  MQTT_TRY(r.bytes(r.remaining(), p.payload));
  return Packet{std::move(p)};
}

Result<Packet> decode_pub_response(PacketType type, uint8_t flags, Reader& r, ProtocolVersion version) {
  if (flags != response_flags(type)) return kBadFlags;
  switch (type) {
    case PacketType::kPuback: return read_response<PacketType::kPuback>(r, version);
    case PacketType::kPubrec: return read_response<PacketType::kPubrec>(r, version);
    case PacketType::kPubrel: return read_response<PacketType::kPubrel>(r, version);
    default: return read_response<PacketType::kPubcomp>(r, version);
  }
}

Result<uint8_t> write_publish(const Publish& p, ProtocolVersion v, Writer& w, bool with_payload) {
  if (w.counting()) {  // validated once, in the counting pass
    if (p.qos > QoS::k2) return Error{ReasonCode::kMalformedPacket, "PUBLISH with QoS 3"};
    if (p.dup && p.qos == QoS::k0) return Error{ReasonCode::kMalformedPacket, "DUP set on QoS 0"};
    if (p.qos != QoS::k0 && p.packet_id == 0) return kPacketIdZero;
    if (p.topic.empty()) {
      if (!is_v5(v) || !p.properties.topic_alias)
        return Error{ReasonCode::kProtocolError, "empty topic name without a topic alias"};
    } else {
      MQTT_TRY(validate_topic_name(p.topic));
    }
    MQTT_TRY(check_properties_for(p.properties, PropertyContext::kPublish, v));
  }
  w.string(p.topic);
  if (p.qos != QoS::k0) w.u16(p.packet_id);
  if (is_v5(v)) write_properties(p.properties, w);
  if (with_payload) w.raw(p.payload);
  return static_cast<uint8_t>((p.dup ? kDup : 0) | (static_cast<uint8_t>(p.qos) << kQosShift) |
                              (p.retain ? kRetain : 0));
}

template <PacketType kType>
Result<uint8_t> write_pub_response(const PubResponse<kType>& p, ProtocolVersion v, Writer& w) {
  if (p.packet_id == 0) return kPacketIdZero;
  w.u16(p.packet_id);
  if (is_v5(v)) {
    if (w.counting()) {
      if (!reason_allowed_in(p.reason_code, kType))
        return Error{ReasonCode::kMalformedPacket, "reason code not allowed in this acknowledgement"};
      MQTT_TRY(check_properties_allowed(p.properties, context_of(kType)));
    }
    write_reason_and_properties(p.reason_code, p.properties, w);
  }
  return response_flags(kType);
}

template Result<uint8_t> write_pub_response(const Puback&, ProtocolVersion, Writer&);
template Result<uint8_t> write_pub_response(const Pubrec&, ProtocolVersion, Writer&);
template Result<uint8_t> write_pub_response(const Pubrel&, ProtocolVersion, Writer&);
template Result<uint8_t> write_pub_response(const Pubcomp&, ProtocolVersion, Writer&);

}  // namespace starling::mqtt::detail
