#include "broker/mqtt/encoder.h"

#include "broker/mqtt/packet_codec.h"

namespace starling::mqtt {
namespace {

using detail::Writer;

// One overload per packet type: validate, then write the body; returns the flags.
Result<uint8_t> write_body(const Connect& p, ProtocolVersion, Writer& w) { return detail::write_connect(p, w); }
Result<uint8_t> write_body(const Connack& p, ProtocolVersion v, Writer& w) { return detail::write_connack(p, v, w); }
Result<uint8_t> write_body(const Publish& p, ProtocolVersion v, Writer& w) { return detail::write_publish(p, v, w); }
template <PacketType kType>
Result<uint8_t> write_body(const PubResponse<kType>& p, ProtocolVersion v, Writer& w) {
  return detail::write_pub_response(p, v, w);
}
Result<uint8_t> write_body(const Subscribe& p, ProtocolVersion v, Writer& w) { return detail::write_subscribe(p, v, w); }
Result<uint8_t> write_body(const Suback& p, ProtocolVersion v, Writer& w) { return detail::write_suback(p, v, w); }
Result<uint8_t> write_body(const Unsubscribe& p, ProtocolVersion v, Writer& w) {
  return detail::write_unsubscribe(p, v, w);
}
Result<uint8_t> write_body(const Unsuback& p, ProtocolVersion v, Writer& w) { return detail::write_unsuback(p, v, w); }
Result<uint8_t> write_body(const Pingreq&, ProtocolVersion, Writer&) { return uint8_t{0}; }
Result<uint8_t> write_body(const Pingresp&, ProtocolVersion, Writer&) { return uint8_t{0}; }
Result<uint8_t> write_body(const Disconnect& p, ProtocolVersion v, Writer& w) {
  return detail::write_disconnect(p, v, w);
}
Result<uint8_t> write_body(const Auth& p, ProtocolVersion v, Writer& w) { return detail::write_auth(p, v, w); }

}  // namespace

Status encode_publish_header(const Publish& p, ProtocolVersion version, std::vector<uint8_t>& out) {
  Writer counter;
  auto flags = detail::write_publish(p, version, counter);
  if (!flags) return flags.error();
  if (counter.failed()) return Error{ReasonCode::kMalformedPacket, "string longer than 65,535 bytes"};
  if (counter.size() > kMaxRemainingLength)
    return Error{ReasonCode::kPacketTooLarge, "packet larger than the protocol allows"};
  const auto remaining = static_cast<uint32_t>(counter.size());
  const size_t head = remaining - p.payload.size();
  const size_t start = out.size();
  out.resize(start + 1 + detail::varint_size(remaining) + head);
  Writer w(out.data() + start);
  w.u8(static_cast<uint8_t>(static_cast<uint8_t>(PacketType::kPublish) << 4 | *flags));
  w.varint(remaining);
  (void)detail::write_publish(p, version, w, /*with_payload=*/false);
  return {};
}

Status encode(const Packet& packet, ProtocolVersion version, std::vector<uint8_t>& out) {
  const auto type = static_cast<uint8_t>(type_of(packet));
  return std::visit(
      [&](const auto& p) -> Status {
        // First pass counts: it validates and gives the remaining length.
        Writer counter;
        auto flags = write_body(p, version, counter);
        if (!flags) return flags.error();
        if (counter.failed()) return Error{ReasonCode::kMalformedPacket, "string longer than 65,535 bytes"};
        if (counter.size() > kMaxRemainingLength)
          return Error{ReasonCode::kPacketTooLarge, "packet larger than the protocol allows"};
        const auto remaining = static_cast<uint32_t>(counter.size());
        const size_t start = out.size();
        out.resize(start + 1 + detail::varint_size(remaining) + remaining);
        Writer w(out.data() + start);
        w.u8(static_cast<uint8_t>(type << 4 | *flags));
        w.varint(remaining);
        (void)write_body(p, version, w);
        return {};
      },
      packet);
}

}  // namespace starling::mqtt
