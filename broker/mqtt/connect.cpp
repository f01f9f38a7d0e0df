// Wire format of CONNECT and CONNACK (spec 3.1, 3.2).
#include "broker/mqtt/connect.h"

#include "broker/mqtt/packet_codec.h"
#include "broker/mqtt/topic.h"

namespace starling::mqtt::detail {
namespace {

constexpr std::string_view kNameV31 = "MQIsdp";
constexpr std::string_view kName = "MQTT";

enum ConnectFlag : uint8_t {
  kReserved = 0x01,
  kCleanStart = 0x02,
  kWillFlag = 0x04,
  kWillQosShift = 3,
  kWillRetain = 0x20,
  kPasswordFlag = 0x40,
  kUserNameFlag = 0x80,
};

Result<ProtocolVersion> read_protocol(Reader& r) {
  std::string_view name;
  uint8_t level = 0;
  MQTT_TRY(r.string(name));
  MQTT_TRY(r.u8(level));
  if (name == kName) {
    if (level == 4) return ProtocolVersion::kV311;
    if (level == 5) return ProtocolVersion::kV5;
  } else if (name == kNameV31) {
    if (level == 3) return ProtocolVersion::kV31;
  } else {
    return Error{ReasonCode::kMalformedPacket, "unknown protocol name"};  // [MQTT-3.1.2-1]
  }
  // [MQTT-3.1.2-2] answered with CONNACK 0x84 (3.1.1: return code 1).
  return Error{ReasonCode::kUnsupportedProtocolVersion, "unsupported protocol level"};
}

}  // namespace

Result<Packet> decode_connect(uint8_t flags, Reader& r) {
  if (flags != 0) return kBadFlags;
  auto version = read_protocol(r);
  if (!version) return version.error();
  Connect c;
  c.version = *version;
  const bool v5 = is_v5(c.version);

  uint8_t cf = 0;
  MQTT_TRY(r.u8(cf));
  if (cf & kReserved) return Error{ReasonCode::kMalformedPacket, "CONNECT reserved flag set"};  // [MQTT-3.1.2-3]
  c.clean_start = (cf & kCleanStart) != 0;
  const bool has_will = (cf & kWillFlag) != 0;
  const uint8_t will_qos = (cf >> kWillQosShift) & 0x03;
  const bool will_retain = (cf & kWillRetain) != 0;
  if (will_qos == 3) return Error{ReasonCode::kMalformedPacket, "will QoS 3"};  // [MQTT-3.1.2-14]
  if (!has_will && (will_qos != 0 || will_retain))
    return Error{ReasonCode::kMalformedPacket, "will QoS or retain without will flag"};  // [MQTT-3.1.2-13,15]
  const bool has_user = (cf & kUserNameFlag) != 0;
  const bool has_password = (cf & kPasswordFlag) != 0;
  if (!v5 && has_password && !has_user)
    return Error{ReasonCode::kMalformedPacket, "password without user name"};  // [MQTT-3.1.2-22]

  MQTT_TRY(r.u16(c.keep_alive));
  if (v5) MQTT_TRY(read_properties(r, PropertyContext::kConnect, c.properties));
  MQTT_TRY(r.string(c.client_id));  // [MQTT-3.1.3-4]
  if (has_will) {
    Will w;
    w.qos = static_cast<QoS>(will_qos);
    w.retain = will_retain;
    if (v5) MQTT_TRY(read_properties(r, PropertyContext::kWill, w.properties));
    MQTT_TRY(r.string(w.topic));
    MQTT_TRY(validate_topic_name(w.topic));
    MQTT_TRY(r.binary(w.payload));
    c.will = w;
  }
  if (has_user) {
    std::string_view user;
    MQTT_TRY(r.string(user));  // [MQTT-3.1.3-11]
    c.username = user;
  }
  if (has_password) {
    std::string_view password;
    MQTT_TRY(r.binary(password));
    c.password = password;
  }
  if (!r.at_end()) return kTrailingBytes;
  return Packet{std::move(c)};
}

Result<Packet> decode_connack(uint8_t flags, Reader& r, ProtocolVersion version) {
  if (flags != 0) return kBadFlags;
  Connack c;
  uint8_t ack = 0;
  uint8_t code = 0;
  MQTT_TRY(r.u8(ack));
  MQTT_TRY(r.u8(code));
  if (ack & 0xFE) return Error{ReasonCode::kMalformedPacket, "CONNACK reserved flags set"};  // [MQTT-3.2.2-1]
  c.session_present = (ack & 0x01) != 0;
  if (is_v5(version)) {
    c.reason_code = static_cast<ReasonCode>(code);
    if (!reason_allowed_in(c.reason_code, PacketType::kConnack))
      return Error{ReasonCode::kMalformedPacket, "reason code not allowed in CONNACK"};
    MQTT_TRY(read_properties(r, PropertyContext::kConnack, c.properties));
  } else if (!connack_from_v3_return_code(code, c.reason_code)) {
    return Error{ReasonCode::kMalformedPacket, "CONNACK return code above 5"};
  }
  if (c.session_present && c.reason_code != ReasonCode::kSuccess)
    return Error{ReasonCode::kProtocolError, "session present on a refused connection"};  // [MQTT-3.2.2-6]
  if (!r.at_end()) return kTrailingBytes;
  return Packet{std::move(c)};
}

Result<uint8_t> write_connect(const Connect& c, Writer& w) {
  const bool v5 = is_v5(c.version);
  if (c.version != ProtocolVersion::kV31 && c.version != ProtocolVersion::kV311 && !v5)
    return Error{ReasonCode::kUnsupportedProtocolVersion, "CONNECT without a protocol version"};
  uint8_t cf = c.clean_start ? kCleanStart : 0;
  if (c.will) {
    if (c.will->qos > QoS::k2) return Error{ReasonCode::kMalformedPacket, "will QoS 3"};
    MQTT_TRY(validate_topic_name(c.will->topic));
    if (v5) MQTT_TRY(check_properties_allowed(c.will->properties, PropertyContext::kWill));
    cf |= kWillFlag | static_cast<uint8_t>(static_cast<uint8_t>(c.will->qos) << kWillQosShift);
    if (c.will->retain) cf |= kWillRetain;
  }
  if (c.username) cf |= kUserNameFlag;
  if (c.password) {
    if (!v5 && !c.username) return Error{ReasonCode::kMalformedPacket, "password without user name"};
    cf |= kPasswordFlag;
  }
  MQTT_TRY(check_properties_for(c.properties, PropertyContext::kConnect, c.version));

  w.string(c.version == ProtocolVersion::kV31 ? kNameV31 : kName);
  w.u8(static_cast<uint8_t>(c.version));
  w.u8(cf);
  w.u16(c.keep_alive);
  if (v5) write_properties(c.properties, w);
  w.string(c.client_id);
  if (c.will) {
    if (v5) write_properties(c.will->properties, w);
    w.string(c.will->topic);
    w.string(c.will->payload);
  }
  if (c.username) w.string(*c.username);
  if (c.password) w.string(*c.password);
  return uint8_t{0};
}

Result<uint8_t> write_connack(const Connack& c, ProtocolVersion v, Writer& w) {
  if (c.session_present && c.reason_code != ReasonCode::kSuccess)
    return Error{ReasonCode::kProtocolError, "session present on a refused connection"};
  if (is_v5(v)) {
    if (!reason_allowed_in(c.reason_code, PacketType::kConnack))
      return Error{ReasonCode::kMalformedPacket, "reason code not allowed in CONNACK"};
    MQTT_TRY(check_properties_allowed(c.properties, PropertyContext::kConnack));
  }
  w.u8(c.session_present ? 1 : 0);
  w.u8(is_v5(v) ? static_cast<uint8_t>(c.reason_code) : connack_v3_return_code(c.reason_code));
  if (is_v5(v)) write_properties(c.properties, w);
  return uint8_t{0};
}

}  // namespace starling::mqtt::detail
