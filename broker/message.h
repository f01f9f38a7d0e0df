// An application message on its way through the broker: what was published,
// shared by every delivery, never changed after it is built.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "broker/mqtt/properties.h"
#include "broker/mqtt/types.h"

namespace starling::broker {

using Clock = std::chrono::steady_clock;

// Identifies a session inside one node (for no-local and the subscription tree).
using SessionId = uint64_t;

// Which message this is, cluster-wide: the node process it was published on
// (a random number each start), the publishing session there and its count.
// A session moving between nodes may get one message both from its old node
// and directly; this tells the copies apart. All zero: not known (wills,
// $SYS), never taken for a copy.
struct MessageId {
  uint64_t origin = 0;
  uint64_t publisher = 0;
  uint64_t serial = 0;
  bool known() const { return serial != 0; }
  friend bool operator==(const MessageId&, const MessageId&) = default;
};

// A fresh MessageId::origin for this process.
uint64_t new_message_origin();

struct MessageIdHash {
  size_t operator()(const MessageId& id) const {
    return static_cast<size_t>(id.origin ^ (id.publisher * 0x9e3779b97f4a7c15ULL) ^
                               (id.serial * 0xc2b2ae3d27d4eb4fULL));
  }
};

struct Message {
  std::string topic;         // resolved (a topic alias never reaches here)
  std::string_view payload;  // points into `backing`
  mqtt::QoS qos = mqtt::QoS::k0;
  bool retain = false;
  // The properties that travel with the message (payload format, content
  // type, response topic, correlation data, user properties); null when there
  // are none, as for most messages, which keeps a message small. Their strings
  // point into `backing`. Expiry is kept as a deadline instead.
  std::shared_ptr<const mqtt::Properties> properties;
  std::optional<Clock::time_point> expires_at;
  Clock::time_point received_at;  // for the publish-to-delivery latency
  SessionId publisher = 0;  // 0: the broker itself ($SYS, wills keep the owner's)
  bool from_peer = false;   // forwarded by another node: not forwarded again
  MessageId id;
  // The received packet's bytes: one copy in, shared by every delivery.
  mqtt::SharedBytes backing;

  bool expired(Clock::time_point now) const { return expires_at && now >= *expires_at; }
  // Seconds left, rounded up, for the Message Expiry Interval sent onwards.
  std::optional<uint32_t> remaining_expiry(Clock::time_point now) const;
};

using MessagePtr = std::shared_ptr<const Message>;

// Builds a message from a received PUBLISH (or a will), keeping only the
// properties that are forwarded to subscribers [MQTT-3.3.2-4..], [MQTT-3.3.2-20].
MessagePtr make_message(std::string topic, std::string_view payload, mqtt::QoS qos, bool retain,
                        const mqtt::Properties& props, SessionId publisher, mqtt::SharedBytes backing,
                        Clock::time_point now, MessageId id = {});

}  // namespace starling::broker
