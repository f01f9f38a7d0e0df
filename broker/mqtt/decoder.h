// Turning bytes into typed packets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "broker/mqtt/packet.h"
#include "broker/mqtt/result.h"

namespace starling::mqtt {

// Decodes one whole packet: its first byte and the `remaining length` bytes after
// its length field. Views in the result point into `body`. `version` is the
// connection's protocol version; a CONNECT is decoded by the version it states.
Result<Packet> decode_packet(uint8_t first_byte, ByteView body, ProtocolVersion version);

// Decodes a stream of packets that arrives in pieces of any size.
//
//   auto space = decoder.prepare(4096);      // read straight into it
//   decoder.commit(socket.read_some(space));
//   while (true) {
//     auto next = decoder.next();
//     if (!next) { close_with(next.error().code); break; }
//     if (!*next) break;                     // need more bytes
//     handle(**next);
//   }
//
// A packet whose stated size exceeds the maximum is refused as soon as its fixed
// header is complete, before its body is buffered, so the buffer never holds more
// than one maximum-size packet plus what the caller chose to read. After an error
// the stream is out of sync and the decoder keeps returning that error.
class StreamDecoder {
 public:
  explicit StreamDecoder(uint32_t max_packet_size = kMaxPacketSize,
                         ProtocolVersion version = ProtocolVersion::kUnknown);

  // Space for up to n more bytes; valid until the next call on the decoder.
  std::span<uint8_t> prepare(size_t n);
  // The first n bytes of the last prepare() now hold data.
  void commit(size_t n);
  // prepare + copy + commit.
  void feed(ByteView bytes);

  // The next whole packet, nullopt when more bytes are needed, or an error.
  Result<std::optional<Decoded>> next();

  // Set from the first CONNECT when it was kUnknown; a client sets it itself.
  ProtocolVersion version() const { return version_; }
  void set_version(ProtocolVersion v) { version_ = v; }
  // Largest whole packet accepted (fixed header included), as MQTT 5 counts it.
  void set_max_packet_size(uint32_t bytes) { max_packet_size_ = bytes; }

  size_t buffered() const { return end_ - begin_; }
  size_t capacity() const { return capacity_; }
  // Frees the buffer when nothing is buffered, so an idle connection holds none.
  void release_if_empty();

 private:
  std::unique_ptr<uint8_t[]> buf_;
  size_t capacity_ = 0;
  size_t begin_ = 0;  // first unconsumed byte
  size_t end_ = 0;    // one past the last committed byte
  uint32_t max_packet_size_;
  ProtocolVersion version_;
  std::optional<Error> failed_;
};

}  // namespace starling::mqtt
