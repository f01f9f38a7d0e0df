// A message as the node's store keeps it (storage/records.h), and back.
// Expiry is kept as wall-clock time, so it still holds after a restart.
#pragma once

#include <chrono>

#include "broker/message.h"
#include "storage/records.h"

namespace starling::broker {

// The two clocks at one moment: the store holds wall-clock time, the broker
// steady-clock deadlines.
struct ClockPair {
  Clock::time_point steady = Clock::now();
  std::chrono::system_clock::time_point wall = std::chrono::system_clock::now();
};

storage::StoredMessage to_stored(const Message& message, const ClockPair& now);
// nullptr when the stored properties do not decode (a damaged record).
// `from_peer`: a message another node forwarded (Message::from_peer).
MessagePtr from_stored(const storage::StoredMessage& stored, const ClockPair& now, bool from_peer = false,
                       MessageId id = {});

}  // namespace starling::broker
