#include "broker/mqtt/wire.h"

#include "broker/mqtt/utf8.h"

namespace starling::mqtt::detail {

Status Reader::u8(uint8_t& v) {
  if (remaining() < 1) return kTruncated;
  v = *p_++;
  return {};
}

Status Reader::u16(uint16_t& v) {
  if (remaining() < 2) return kTruncated;
  v = static_cast<uint16_t>((p_[0] << 8) | p_[1]);
  p_ += 2;
  return {};
}

Status Reader::u32(uint32_t& v) {
  if (remaining() < 4) return kTruncated;
  v = (uint32_t(p_[0]) << 24) | (uint32_t(p_[1]) << 16) | (uint32_t(p_[2]) << 8) | p_[3];
  p_ += 4;
  return {};
}

Status Reader::varint(uint32_t& v) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    if (at_end()) return kTruncated;
    uint8_t b = *p_++;
    value |= uint32_t(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      // [MQTT-1.5.5-1] the minimum number of bytes: a last byte of 0 after others
      // is padding.
      if (i > 0 && b == 0) return Error{ReasonCode::kMalformedPacket, "variable byte integer not in minimal form"};
      v = value;
      return {};
    }
  }
  return Error{ReasonCode::kMalformedPacket, "variable byte integer longer than 4 bytes"};
}

Status Reader::bytes(size_t n, std::string_view& v) {
  if (remaining() < n) return kTruncated;
  v = std::string_view(reinterpret_cast<const char*>(p_), n);
  p_ += n;
  return {};
}

Status Reader::binary(std::string_view& v) {
  uint16_t len = 0;
  MQTT_TRY(u16(len));
  return bytes(len, v);
}

Status Reader::string(std::string_view& v) {
  MQTT_TRY(binary(v));
  if (!is_valid_mqtt_utf8(v)) return Error{ReasonCode::kMalformedPacket, "string is not valid MQTT UTF-8"};
  return {};
}

Status Reader::split(size_t n, Reader& rest) {
  if (remaining() < n) return kTruncated;
  rest = Reader(ByteView(p_ + n, end_));
  end_ = p_ + n;
  return {};
}

void Writer::varint(uint32_t v) {
  if (v > kMaxRemainingLength) {
    fail();
    return;
  }
  do {
    uint8_t b = v & 0x7F;
    v >>= 7;
    if (v != 0) b |= 0x80;
    u8(b);
  } while (v != 0);
}

void Writer::string(std::string_view s) {
  if (s.size() > 0xFFFF) {
    fail();
    return;
  }
  u16(static_cast<uint16_t>(s.size()));
  raw(s);
}

HeaderParse parse_fixed_header(ByteView data, FixedHeader& out) {
  if (data.size() < 2) return HeaderParse::kNeedMore;
  uint32_t value = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (1 + i >= data.size()) return HeaderParse::kNeedMore;
    uint8_t b = data[1 + i];
    value |= uint32_t(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      if (i > 0 && b == 0) return HeaderParse::kMalformed;  // [MQTT-1.5.5-1]
      out.first_byte = data[0];
      out.remaining_length = value;
      out.header_size = static_cast<uint8_t>(2 + i);
      return HeaderParse::kComplete;
    }
  }
  return HeaderParse::kMalformed;
}

}  // namespace starling::mqtt::detail
