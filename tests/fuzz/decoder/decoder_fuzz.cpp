// libFuzzer target for the MQTT decoder. Feeds arbitrary bytes to a
// StreamDecoder in pieces; every packet it accepts must encode again and decode
// to an equal packet. Crashes, leaks, sanitizer reports and asymmetries abort.
#include <cstdio>
#include <cstdlib>

#include "broker/mqtt/decoder.h"
#include "broker/mqtt/encoder.h"
#include "tests/fuzz/decoder/fuzz_input.h"

using namespace starling::mqtt;

namespace {

[[noreturn]] void fail(const char* what, const Packet& p) {
  std::fprintf(stderr, "decoder_fuzz: %s (%s)\n", what, packet_type_name(type_of(p)).data());
  std::abort();
}

void check_round_trip(const Decoded& d, ProtocolVersion version) {
  std::vector<uint8_t> bytes;
  auto st = encode(d.packet, version, bytes);
  if (!st.ok()) {
    std::fprintf(stderr, "encoder refused: %s\n", st.error().detail.data());
    fail("a decoded packet does not encode", d.packet);
  }
  const auto* c = std::get_if<Connect>(&d.packet);
  StreamDecoder again(kMaxPacketSize, c != nullptr ? ProtocolVersion::kUnknown : version);
  again.feed(bytes);
  auto back = again.next();
  if (!back.ok() || !back->has_value()) fail("an encoded packet does not decode", d.packet);
  if (!((*back)->packet == d.packet)) fail("round trip changed the packet", d.packet);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const ProtocolVersion version = fuzz::version_of(data[0]);
  const size_t piece = fuzz::piece_size_of(data[0]);
  StreamDecoder decoder(fuzz::max_packet_size_of(data[1]), version);
  data += 2;
  size -= 2;
  for (size_t at = 0; at < size; at += piece) {
    decoder.feed(ByteView(data + at, std::min(piece, size - at)));
    while (true) {
      auto next = decoder.next();
      if (!next.ok()) return 0;  // the stream is rejected: fine, as long as nothing broke
      if (!next->has_value()) break;
      check_round_trip(**next, decoder.version());
    }
    decoder.release_if_empty();
  }
  return 0;
}
