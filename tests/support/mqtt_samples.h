// Packets of every type, for tests and for the fuzzer's seed corpus.
#pragma once

#include <vector>

#include "broker/mqtt/packet.h"

namespace starling::mqtt::test {

// Every property allowed in `ctx` set to a non-default value (strings point to
// static storage).
Properties full_properties(PropertyContext ctx);

// Packets of every type that `version` has, with every property and flag
// combination worth covering. The first is a CONNECT of that version. For 3.1 and
// 3.1.1 the MQTT 5-only parts are left at their defaults, so that decoding the
// encoding gives back the same packet.
std::vector<Packet> sample_packets(ProtocolVersion version);

}  // namespace starling::mqtt::test
