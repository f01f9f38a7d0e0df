// Writes the decoder fuzzer's seed corpus: each sample packet of each version
// on its own, and each version's whole sample stream, behind the settings bytes.
#include <cstdio>
#include <fstream>
#include <string>

#include "broker/mqtt/encoder.h"
#include "tests/fuzz/decoder/fuzz_input.h"
#include "tests/support/mqtt_samples.h"

using namespace starling::mqtt;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_decoder_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  int files = 0;
  auto write = [&](const std::string& name, uint8_t settings, const std::vector<uint8_t>& stream) {
    std::ofstream f(dir + "/" + name, std::ios::binary);
    const uint8_t head[2] = {settings, 0};
    f.write(reinterpret_cast<const char*>(head), 2);
    f.write(reinterpret_cast<const char*>(stream.data()), static_cast<std::streamsize>(stream.size()));
    ++files;
    return static_cast<bool>(f);
  };
  for (ProtocolVersion v : {ProtocolVersion::kV31, ProtocolVersion::kV311, ProtocolVersion::kV5}) {
    const auto packets = test::sample_packets(v);
    const std::string tag = "v" + std::to_string(static_cast<int>(v));
    std::vector<uint8_t> all;
    for (size_t i = 0; i < packets.size(); ++i) {
      std::vector<uint8_t> one;
      if (!encode(packets[i], v, one).ok()) return 1;
      all.insert(all.end(), one.begin(), one.end());
      if (std::get_if<Publish>(&packets[i]) && one.size() > 4096) continue;  // over -max_len
      const bool is_connect = i == 0;
      // A CONNECT starts a connection of unknown version; the rest arrive on one.
      if (!write(tag + "-" + std::to_string(i) + "-" + std::string(packet_type_name(type_of(packets[i]))),
                 fuzz::settings_byte(is_connect ? ProtocolVersion::kUnknown : v, 64), one))
        return 1;
    }
    if (!write(tag + "-stream-by-7", fuzz::settings_byte(ProtocolVersion::kUnknown, 7), all)) return 1;
  }
  std::printf("wrote %d seeds to %s\n", files, dir.c_str());
  return 0;
}
