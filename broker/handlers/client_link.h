// What a packet handler may ask of the connection it runs for, and the
// per-connection MQTT state it reads and changes. Connection implements it;
// tests can fake it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/broker_context.h"
#include "broker/mqtt/packet.h"
#include "broker/session/session.h"
#include "storage/kv_store.h"

namespace starling::broker {

// Per-connection protocol state, owned by the connection, touched only on its
// worker.
struct ClientState {
  bool connected = false;  // CONNECT accepted
  mqtt::ProtocolVersion version = mqtt::ProtocolVersion::kUnknown;
  std::shared_ptr<Session> session;
  // The session's, once CONNECT is accepted; empty before.
  const std::string& client_id() const {
    static const std::string none;
    return session ? session->client_id() : none;
  }
  std::unique_ptr<mqtt::Will> will;  // views into will_backing; a pointer: most clients have none
  mqtt::SharedBytes will_backing;
  uint32_t will_delay = 0;
  uint32_t session_expiry = 0;  // as requested, seconds
  uint16_t keep_alive = 0;      // seconds in force, 0: none
  // What the client accepts (from its CONNECT).
  uint16_t client_receive_maximum = 65535;
  uint32_t client_max_packet_size = mqtt::kMaxPacketSize;
  uint16_t client_topic_alias_maximum = 0;
  struct TopicAliases {
    // The client's, for its PUBLISHes (index = alias).
    std::vector<std::string> inbound;
    // Ours towards the client, by topic.
    std::unordered_map<std::string, uint16_t> outbound;
  };
  // Made on first use: most clients never use aliases, and an idle connection
  // should cost little memory.
  std::unique_ptr<TopicAliases> aliases;
  TopicAliases& topic_aliases() {
    if (!aliases) aliases = std::make_unique<TopicAliases>();
    return *aliases;
  }
};

class ClientLink {
 public:
  virtual ~ClientLink() = default;
  virtual ClientState& state() = 0;
  virtual BrokerContext& broker() = 0;
  // Encodes and queues a packet for the client.
  virtual void send(const mqtt::Packet& packet) = 0;
  // PUBACK (kPuback) or PUBREC (kPubrec) for an inbound PUBLISH. With a
  // `write`, the acknowledgement waits until the store has it (as --fsync
  // says); acknowledgements go out in the order of their PUBLISHes, so any
  // later one waits too. A failed write turns the acknowledgement into 0x80
  // (MQTT 5) or closes the connection unacknowledged (3.1.1).
  virtual void acknowledge(mqtt::PacketType type, uint16_t packet_id, mqtt::ReasonCode code,
                           storage::WriteBatch* write = nullptr) = 0;
  // Sends what the session has ready (and, after CONNECT, what is in flight).
  virtual void flush_session(bool resend_inflight) = 0;
  // Closes the connection. With a reason and an MQTT 5 client, a DISCONNECT
  // carrying it (and `why` as its Reason String) goes first. `normal` (client
  // sent DISCONNECT 0x00) means no will.
  virtual void close(std::optional<mqtt::ReasonCode> reason, bool normal, std::string_view why = {}) = 0;
  // This connection as its session sees it.
  virtual std::weak_ptr<SessionListener> listener() = 0;
  virtual void set_keep_alive(uint16_t seconds) = 0;
  // Stops reading from the client until `congested` (and any other session
  // waited on meanwhile) has room again, bounded in time (see Connection), so
  // a publisher slows to its subscribers' pace.
  virtual void wait_for_room(Session& congested) = 0;
};

// Sends PUBACK, PUBREC or PUBCOMP (`Ack`) with its packet id and reason code
// (which the encoder leaves out for 3.1.1).
template <class Ack>
void send_pub_response(ClientLink& link, uint16_t packet_id, mqtt::ReasonCode code) {
  Ack ack;
  ack.packet_id = packet_id;
  ack.reason_code = code;
  link.send(ack);
}

}  // namespace starling::broker
