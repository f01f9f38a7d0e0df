#include "broker/mqtt/decoder.h"

#include <algorithm>
#include <cstring>

#include "broker/mqtt/packet_codec.h"

namespace starling::mqtt {
namespace {

using detail::Reader;

// Whether a decoded packet may hold views into its body. Packets that always
// carry strings do; the rest only when they carry properties, which takes more
// than 4 bytes of body (length, identifier, 2-byte string length, a byte).
// Small acknowledgements, the bulk of the traffic, thus decode without copying.
bool needs_backing(PacketType type, size_t body_size) {
  switch (type) {
    case PacketType::kConnect:
    case PacketType::kPublish:
    case PacketType::kSubscribe:
    case PacketType::kUnsubscribe:
      return true;
    default:
      return body_size > 4;
  }
}

}  // namespace

Result<Packet> decode_packet(uint8_t first_byte, ByteView body, ProtocolVersion version) {
  const auto type = static_cast<PacketType>(first_byte >> 4);
  const uint8_t flags = first_byte & 0x0F;
  Reader r(body);
  if (version == ProtocolVersion::kUnknown && type != PacketType::kConnect)
    return Error{ReasonCode::kProtocolError, "first packet is not CONNECT"};  // [MQTT-3.1.0-1]
  switch (type) {
    case PacketType::kConnect: return detail::decode_connect(flags, r);
    case PacketType::kConnack: return detail::decode_connack(flags, r, version);
    case PacketType::kPublish: return detail::decode_publish(flags, r, version);
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: return detail::decode_pub_response(type, flags, r, version);
    case PacketType::kSubscribe: return detail::decode_subscribe(flags, r, version);
    case PacketType::kSuback: return detail::decode_suback(flags, r, version);
    case PacketType::kUnsubscribe: return detail::decode_unsubscribe(flags, r, version);
    case PacketType::kUnsuback: return detail::decode_unsuback(flags, r, version);
    case PacketType::kPingreq:
    case PacketType::kPingresp: return detail::decode_ping(type, flags, r);
    case PacketType::kDisconnect: return detail::decode_disconnect(flags, r, version);
    case PacketType::kAuth: return detail::decode_auth(flags, r, version);
  }
  return Error{ReasonCode::kMalformedPacket, "reserved packet type 0"};
}

StreamDecoder::StreamDecoder(uint32_t max_packet_size, ProtocolVersion version)
    : max_packet_size_(max_packet_size), version_(version) {}

std::span<uint8_t> StreamDecoder::prepare(size_t n) {
  if (capacity_ - end_ < n) {
    const size_t used = end_ - begin_;
    if (capacity_ - used >= n && begin_ > 0) {
      std::memmove(buf_.get(), buf_.get() + begin_, used);
    } else {
      size_t cap = std::max({capacity_ * 2, used + n, size_t{256}});
      auto bigger = std::make_unique_for_overwrite<uint8_t[]>(cap);
      if (used > 0) std::memcpy(bigger.get(), buf_.get() + begin_, used);
      buf_ = std::move(bigger);
      capacity_ = cap;
    }
    begin_ = 0;
    end_ = used;
  }
  return {buf_.get() + end_, n};
}

void StreamDecoder::commit(size_t n) { end_ += std::min(n, capacity_ - end_); }

void StreamDecoder::feed(ByteView bytes) {
  if (bytes.empty()) return;
  auto space = prepare(bytes.size());
  std::memcpy(space.data(), bytes.data(), bytes.size());
  commit(bytes.size());
}

void StreamDecoder::release_if_empty() {
  if (begin_ != end_) return;
  buf_.reset();
  capacity_ = begin_ = end_ = 0;
}

Result<std::optional<Decoded>> StreamDecoder::next() {
  if (failed_) return *failed_;
  detail::FixedHeader header;
  switch (detail::parse_fixed_header({buf_.get() + begin_, end_ - begin_}, header)) {
    case detail::HeaderParse::kNeedMore: return std::optional<Decoded>{};
    case detail::HeaderParse::kMalformed:
      failed_ = Error{ReasonCode::kMalformedPacket, "bad remaining length"};
      return *failed_;
    case detail::HeaderParse::kComplete: break;
  }
  // Refused on the fixed header alone, before the body is buffered.
  const size_t total = size_t{header.header_size} + header.remaining_length;
  if (total > max_packet_size_) {
    failed_ = Error{ReasonCode::kPacketTooLarge, "packet larger than the maximum packet size"};
    return *failed_;
  }
  if (end_ - begin_ < total) return std::optional<Decoded>{};

  const uint8_t* body = buf_.get() + begin_ + header.header_size;
  const auto type = static_cast<PacketType>(header.first_byte >> 4);
  Decoded out{Pingreq{}, nullptr};
  ByteView view(body, header.remaining_length);
  if (needs_backing(type, header.remaining_length)) {
    auto copy = std::make_shared_for_overwrite<uint8_t[]>(header.remaining_length);
    std::memcpy(copy.get(), body, header.remaining_length);
    view = ByteView(copy.get(), header.remaining_length);
    out.backing = std::move(copy);
  }
  auto packet = decode_packet(header.first_byte, view, version_);
  begin_ += total;
  if (begin_ == end_) begin_ = end_ = 0;
  if (!packet) {
    failed_ = packet.error();
    return *failed_;
  }
  out.packet = std::move(*packet);
  if (version_ == ProtocolVersion::kUnknown) {
    if (auto* c = std::get_if<Connect>(&out.packet)) version_ = c->version;
  }
  return std::optional<Decoded>(std::move(out));
}

}  // namespace starling::mqtt
