#include "broker/stored_message.h"

#include <cstring>

namespace starling::broker {

namespace chrono = std::chrono;

storage::StoredMessage to_stored(const Message& m, const ClockPair& now) {
  storage::StoredMessage s;
  s.topic = m.topic;
  s.payload = std::string(m.payload);
  s.qos = static_cast<uint8_t>(m.qos);
  s.retain = m.retain;
  if (m.properties) {
    const auto bytes = mqtt::encode_properties(*m.properties);
    s.properties.assign(bytes.begin(), bytes.end());
  }
  if (m.expires_at) {
    const auto wall = now.wall + chrono::duration_cast<chrono::system_clock::duration>(*m.expires_at - now.steady);
    // At least 1: 0 means "never expires".
    s.expires_at_ms = std::max<int64_t>(1, chrono::duration_cast<chrono::milliseconds>(wall.time_since_epoch()).count());
  }
  return s;
}

MessagePtr from_stored(const storage::StoredMessage& s, const ClockPair& now, bool from_peer, MessageId id) {
  auto m = std::make_shared<Message>();
  m->from_peer = from_peer;
  m->id = id;
  if (from_peer) m->received_at = now.steady;  // latency counts from arrival here
  m->topic = s.topic;
  m->qos = static_cast<mqtt::QoS>(s.qos);
  m->retain = s.retain;
  // One buffer for the payload and the properties' strings, as a received
  // packet's backing.
  const size_t size = s.payload.size() + s.properties.size();
  auto backing = std::make_shared_for_overwrite<uint8_t[]>(std::max<size_t>(size, 1));
  std::memcpy(backing.get(), s.payload.data(), s.payload.size());
  std::memcpy(backing.get() + s.payload.size(), s.properties.data(), s.properties.size());
  m->payload = std::string_view(reinterpret_cast<const char*>(backing.get()), s.payload.size());
  if (!s.properties.empty()) {
    auto props = std::make_shared<mqtt::Properties>();
    if (!mqtt::decode_properties({backing.get() + s.payload.size(), s.properties.size()},
                                 mqtt::PropertyContext::kPublish, *props)) {
      return nullptr;
    }
    m->properties = std::move(props);
  }
  if (s.expires_at_ms != 0) {
    const chrono::system_clock::time_point wall{chrono::milliseconds(s.expires_at_ms)};
    m->expires_at = now.steady + chrono::duration_cast<Clock::duration>(wall - now.wall);
  }
  m->backing = std::move(backing);
  return m;
}

}  // namespace starling::broker
