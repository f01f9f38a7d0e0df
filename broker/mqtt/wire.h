// Reading and writing the MQTT data representations (spec 1.5): integers,
// variable byte integers, strings, binary data. Used by the packet codecs only.
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

#include "broker/mqtt/result.h"
#include "broker/mqtt/types.h"

// Returns the error of a Status-returning expression from the calling function.
#define MQTT_TRY(expr)                      \
  do {                                      \
    ::starling::mqtt::Status s_ = (expr);   \
    if (!s_.ok()) return s_.error();        \
  } while (0)

namespace starling::mqtt::detail {

inline constexpr Error kTruncated{ReasonCode::kMalformedPacket, "packet shorter than its fields"};

// Reads fields from a packet body. Every read checks the bounds; strings are
// validated as MQTT UTF-8.
class Reader {
 public:
  explicit Reader(ByteView body) : p_(body.data()), end_(body.data() + body.size()) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool at_end() const { return p_ == end_; }

  Status u8(uint8_t& v);
  Status u16(uint16_t& v);
  Status u32(uint32_t& v);
  Status varint(uint32_t& v);
  Status string(std::string_view& v);      // UTF-8 Encoded String
  Status binary(std::string_view& v);      // Binary Data
  Status bytes(size_t n, std::string_view& v);
  // Narrows the reader to the next n bytes; `rest` gets what follows them.
  Status split(size_t n, Reader& rest);

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Writes fields. With no buffer it only counts, so the same code computes a
// packet's length and then writes it. A string over 65,535 bytes makes the
// writer fail rather than write a malformed length.
class Writer {
 public:
  Writer() = default;  // counting
  explicit Writer(uint8_t* out) : out_(out) {}

  void u8(uint8_t v) { put(&v, 1); }
  void u16(uint16_t v) {
    uint8_t b[2] = {uint8_t(v >> 8), uint8_t(v)};
    put(b, 2);
  }
  void u32(uint32_t v) {
    uint8_t b[4] = {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
    put(b, 4);
  }
  void varint(uint32_t v);
  void string(std::string_view s);  // also Binary Data: same layout
  void raw(std::string_view s) { put(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

  size_t size() const { return n_; }
  // The encoder's first pass: it validates and counts; the second only writes.
  bool counting() const { return out_ == nullptr; }
  bool failed() const { return failed_; }
  void fail() { failed_ = true; }

 private:
  void put(const uint8_t* p, size_t n) {
    if (out_ != nullptr && n != 0) std::memcpy(out_ + n_, p, n);
    n_ += n;
  }
  uint8_t* out_ = nullptr;
  size_t n_ = 0;
  bool failed_ = false;
};

// Bytes a variable byte integer takes (1-4); v must be <= kMaxRemainingLength.
inline size_t varint_size(uint32_t v) {
  return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

// Result of parsing a fixed header from the start of a buffer.
struct FixedHeader {
  uint8_t first_byte = 0;
  uint32_t remaining_length = 0;
  uint8_t header_size = 0;  // 2..5
};

enum class HeaderParse { kComplete, kNeedMore, kMalformed };

// Parses the fixed header at the start of `data` (which may hold only part of it).
HeaderParse parse_fixed_header(ByteView data, FixedHeader& out);

}  // namespace starling::mqtt::detail
