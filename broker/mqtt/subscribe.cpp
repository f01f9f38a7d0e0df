// Wire format of SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (spec 3.8-3.11).
#include "broker/mqtt/subscribe.h"

#include "broker/mqtt/packet_codec.h"
#include "broker/mqtt/topic.h"

namespace starling::mqtt::detail {
namespace {

// SUBSCRIBE and UNSUBSCRIBE have flags 0b0010 [MQTT-3.8.1-1], [MQTT-3.10.1-1].
constexpr uint8_t kSubscribeFlags = 0x02;

enum OptionBits : uint8_t { kNoLocal = 0x04, kRetainAsPublished = 0x08, kRetainShift = 4 };

// [MQTT-3.8.3-2], [MQTT-3.10.3-2]: a protocol error in MQTT 5; 3.1.1 calls any
// such violation malformed.
Error empty_list(ProtocolVersion v) {
  return Error{is_v5(v) ? ReasonCode::kProtocolError : ReasonCode::kMalformedPacket, "no topic filters"};
}

Status read_options(uint8_t b, ProtocolVersion v, SubscriptionOptions& o) {
  // 3.1.1: bits 2-7 reserved [MQTT-3.8.3-4]; MQTT 5: bits 6-7 reserved [MQTT-3.8.3-5].
  const uint8_t reserved = is_v5(v) ? 0xC0 : 0xFC;
  if (b & reserved) return Error{ReasonCode::kMalformedPacket, "reserved subscription option bits set"};
  // MQTT 5 calls QoS 3 a protocol error (3.8.3.1); 3.1.1 a malformed packet.
  if ((b & 0x03) == 3)
    return Error{is_v5(v) ? ReasonCode::kProtocolError : ReasonCode::kMalformedPacket, "subscription with QoS 3"};
  o.qos = static_cast<QoS>(b & 0x03);
  o.no_local = (b & kNoLocal) != 0;
  o.retain_as_published = (b & kRetainAsPublished) != 0;
  const uint8_t rh = (b >> kRetainShift) & 0x03;
  if (rh == 3) return Error{ReasonCode::kProtocolError, "retain handling 3"};
  o.retain_handling = static_cast<RetainHandling>(rh);
  return {};
}

Status check_subscription(const Subscription& s) {
  MQTT_TRY(validate_topic_filter(s.filter));
  if (s.options.no_local && parse_shared_filter(s.filter))
    return Error{ReasonCode::kProtocolError, "no local on a shared subscription"};  // [MQTT-3.8.3-4]
  return {};
}

Status read_codes(Reader& r, PacketType type, ProtocolVersion v, std::vector<ReasonCode>& out) {
  if (r.at_end()) return Error{ReasonCode::kMalformedPacket, "acknowledgement without reason codes"};
  while (!r.at_end()) {
    uint8_t code = 0;
    MQTT_TRY(r.u8(code));
    auto rc = static_cast<ReasonCode>(code);
    const bool ok = is_v5(v) ? reason_allowed_in(rc, type)
                             : (code <= 2 || rc == ReasonCode::kUnspecifiedError);  // 3.1.1 SUBACK
    if (!ok) return Error{ReasonCode::kMalformedPacket, "reason code not allowed in this acknowledgement"};
    out.push_back(rc);
  }
  return {};
}

Status check_codes(const std::vector<ReasonCode>& codes, PacketType type) {
  if (codes.empty()) return Error{ReasonCode::kMalformedPacket, "acknowledgement without reason codes"};
  for (ReasonCode rc : codes)
    if (!reason_allowed_in(rc, type))
      return Error{ReasonCode::kMalformedPacket, "reason code not allowed in this acknowledgement"};
  return {};
}

}  // namespace

Result<Packet> decode_subscribe(uint8_t flags, Reader& r, ProtocolVersion version) {
  if (flags != kSubscribeFlags) return kBadFlags;
  Subscribe s;
  MQTT_TRY(r.u16(s.packet_id));
  if (s.packet_id == 0) return kPacketIdZero;
  if (is_v5(version)) MQTT_TRY(read_properties(r, PropertyContext::kSubscribe, s.properties));
  if (r.at_end()) return empty_list(version);
  while (!r.at_end()) {
    Subscription sub;
    uint8_t options = 0;
    MQTT_TRY(r.string(sub.filter));
    MQTT_TRY(r.u8(options));
    MQTT_TRY(read_options(options, version, sub.options));
    MQTT_TRY(check_subscription(sub));
    s.subscriptions.push_back(sub);
  }
  return Packet{std::move(s)};
}

Result<Packet> decode_suback(uint8_t flags, Reader& r, ProtocolVersion version) {
  if (flags != 0) return kBadFlags;
  Suback s;
  MQTT_TRY(r.u16(s.packet_id));
  if (s.packet_id == 0) return kPacketIdZero;
  if (is_v5(version)) MQTT_TRY(read_properties(r, PropertyContext::kSuback, s.properties));
  MQTT_TRY(read_codes(r, PacketType::kSuback, version, s.reason_codes));
  return Packet{std::move(s)};
}

Result<Packet> decode_unsubscribe(uint8_t flags, Reader& r, ProtocolVersion version) {
  if (flags != kSubscribeFlags) return kBadFlags;
  Unsubscribe u;
  MQTT_TRY(r.u16(u.packet_id));
  if (u.packet_id == 0) return kPacketIdZero;
  if (is_v5(version)) MQTT_TRY(read_properties(r, PropertyContext::kUnsubscribe, u.properties));
  if (r.at_end()) return empty_list(version);
  while (!r.at_end()) {
    std::string_view filter;
    MQTT_TRY(r.string(filter));
    MQTT_TRY(validate_topic_filter(filter));
    u.filters.push_back(filter);
  }
  return Packet{std::move(u)};
}

Result<Packet> decode_unsuback(uint8_t flags, Reader& r, ProtocolVersion version) {
  if (flags != 0) return kBadFlags;
  Unsuback u;
  MQTT_TRY(r.u16(u.packet_id));
  if (u.packet_id == 0) return kPacketIdZero;
  if (is_v5(version)) {
    MQTT_TRY(read_properties(r, PropertyContext::kUnsuback, u.properties));
    MQTT_TRY(read_codes(r, PacketType::kUnsuback, version, u.reason_codes));
  }
  if (!r.at_end()) return kTrailingBytes;
  return Packet{std::move(u)};
}

Result<uint8_t> write_subscribe(const Subscribe& s, ProtocolVersion v, Writer& w) {
  if (s.packet_id == 0) return kPacketIdZero;
  if (s.subscriptions.empty()) return empty_list(v);
  MQTT_TRY(check_properties_for(s.properties, PropertyContext::kSubscribe, v));
  for (const Subscription& sub : s.subscriptions) {
    if (sub.options.qos > QoS::k2) return Error{ReasonCode::kMalformedPacket, "subscription with QoS 3"};
    if (sub.options.retain_handling > RetainHandling::kDoNotSend)
      return Error{ReasonCode::kProtocolError, "retain handling 3"};
    MQTT_TRY(check_subscription(sub));
  }
  w.u16(s.packet_id);
  if (is_v5(v)) write_properties(s.properties, w);
  for (const Subscription& sub : s.subscriptions) {
    w.string(sub.filter);
    w.u8(is_v5(v) ? options_byte(sub.options) : static_cast<uint8_t>(sub.options.qos));
  }
  return kSubscribeFlags;
}

Result<uint8_t> write_suback(const Suback& s, ProtocolVersion v, Writer& w) {
  if (s.packet_id == 0) return kPacketIdZero;
  MQTT_TRY(check_codes(s.reason_codes, PacketType::kSuback));
  MQTT_TRY(check_properties_for(s.properties, PropertyContext::kSuback, v));
  w.u16(s.packet_id);
  if (is_v5(v)) write_properties(s.properties, w);
  for (ReasonCode rc : s.reason_codes) {
    auto code = static_cast<uint8_t>(rc);
    // 3.1.1 knows one failure code, 0x80.
    w.u8(is_v5(v) || code <= 2 ? code : 0x80);
  }
  return uint8_t{0};
}

Result<uint8_t> write_unsubscribe(const Unsubscribe& u, ProtocolVersion v, Writer& w) {
  if (u.packet_id == 0) return kPacketIdZero;
  if (u.filters.empty()) return empty_list(v);
  MQTT_TRY(check_properties_for(u.properties, PropertyContext::kUnsubscribe, v));
  for (std::string_view f : u.filters) MQTT_TRY(validate_topic_filter(f));
  w.u16(u.packet_id);
  if (is_v5(v)) write_properties(u.properties, w);
  for (std::string_view f : u.filters) w.string(f);
  return kSubscribeFlags;
}

Result<uint8_t> write_unsuback(const Unsuback& u, ProtocolVersion v, Writer& w) {
  if (u.packet_id == 0) return kPacketIdZero;
  w.u16(u.packet_id);
  if (is_v5(v)) {
    MQTT_TRY(check_codes(u.reason_codes, PacketType::kUnsuback));
    MQTT_TRY(check_properties_allowed(u.properties, PropertyContext::kUnsuback));
    write_properties(u.properties, w);
    for (ReasonCode rc : u.reason_codes) w.u8(static_cast<uint8_t>(rc));
  }
  return uint8_t{0};
}

}  // namespace starling::mqtt::detail

namespace starling::mqtt {

uint8_t options_byte(const SubscriptionOptions& o) {
  auto b = static_cast<uint8_t>(o.qos);
  if (o.no_local) b |= detail::kNoLocal;
  if (o.retain_as_published) b |= detail::kRetainAsPublished;
  const auto handling = static_cast<uint8_t>(o.retain_handling);
  return static_cast<uint8_t>(b | static_cast<uint8_t>(handling << detail::kRetainShift));
}

Result<SubscriptionOptions> parse_options_byte(uint8_t byte) {
  SubscriptionOptions o;
  MQTT_TRY(detail::read_options(byte, ProtocolVersion::kV5, o));
  return o;
}

}  // namespace starling::mqtt
