// What a packet handler may ask of the connection it runs for, and the
// per-connection MQTT state it reads and changes. Connection implements it;
// tests can fake it.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/broker_context.h"
#include "broker/mqtt/packet.h"
#include "broker/session/session_replication.h"
#include "broker/session/session.h"
#include "broker/session/session_records.h"
#include "storage/kv_store.h"
#include "storage/result.h"

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
  // The will as a message (null when there is none), and as a session
  // record keeps it.
  MessagePtr will_message(Clock::time_point now) const;
  std::optional<WillRecord> will_record(Clock::time_point now) const;
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

  // Replies (PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK) go out in
  // the order they were made; one that waits for the store holds back those
  // behind it. `after` runs once the reply is sent.
  using After = std::function<void(ClientLink&)>;
  virtual void reply(mqtt::Packet packet, After after = {}) = 0;
  // Holds `packet` until the returned callback (given to whatever submits the
  // write: GroupCommit::submit) reports the write stored, as --fsync says.
  // If it failed, the client is told so where the packet can say it (MQTT 5
  // reason 0x80; a 3.1.1 SUBACK's 0x80) and `after` does not run; otherwise
  // the connection closes unanswered.
  using StoreDone = std::function<void(const storage::Status&)>;
  virtual StoreDone hold_reply(mqtt::Packet packet, After after = {}) = 0;
  // The same for a reply that waits on something else too (other nodes):
  // the returned callback says whether all went well; callbacks may come in
  // any order and from any thread, replies still go out in order.
  using Release = std::function<void(bool ok)>;
  virtual Release hold_reply_until(mqtt::Packet packet, After after = {}) = 0;
  // Sends what the session has ready (and, after CONNECT, what is in flight).
  virtual void flush_session(bool resend_inflight) = 0;
  // Closes the connection. With a reason and an MQTT 5 client, a DISCONNECT
  // carrying it (and `why` as its Reason String) goes first. `normal` (client
  // sent DISCONNECT 0x00) means no will.
  virtual void close(std::optional<mqtt::ReasonCode> reason, bool normal, std::string_view why = {}) = 0;
  // This connection as its session sees it.
  virtual std::weak_ptr<SessionListener> listener() = 0;
  virtual void set_keep_alive(uint16_t seconds) = 0;
  // Where this connection's traffic is counted (its worker's counters).
  virtual TrafficCounters& traffic() = 0;
  // Stops handling the client's packets (those that arrive are held, in
  // order) until the returned callback is called, from any thread, with what
  // to do next: that runs on the connection's worker, even when the
  // connection closed meanwhile (it then finds it closed), and then the held
  // packets are handled. The connection lives at least until then: call the
  // callback, once, in bounded time.
  using Resume = std::function<void(std::function<void(ClientLink&)> then)>;
  virtual Resume suspend() = 0;
  // Whether the connection is closing or closed.
  virtual bool closed() const = 0;
  // Stops reading from the client until `congested` (and any other session
  // waited on meanwhile) has room again, bounded in time (see Connection), so
  // a publisher slows to its subscribers' pace.
  virtual void wait_for_room(Session& congested) = 0;
};

// PUBACK, PUBREC, PUBREL or PUBCOMP (`Ack`) with its packet id and reason
// code (which the encoder leaves out for 3.1.1).
template <class Ack>
mqtt::Packet pub_response(uint16_t packet_id, mqtt::ReasonCode code = mqtt::ReasonCode::kSuccess) {
  Ack ack;
  ack.packet_id = packet_id;
  ack.reason_code = code;
  return ack;
}

// A reply that waits for several things (its store write, other nodes'
// acknowledgements), which may finish before the reply is made: each part()
// is called once; the reply given to hold() is released when all were, ok
// only when all were.
class ReplyGate : public std::enable_shared_from_this<ReplyGate> {
 public:
  static std::shared_ptr<ReplyGate> make() { return std::make_shared<ReplyGate>(); }
  ClientLink::Release part();
  // A part that is a store write: its outcome is also noted
  // (BrokerContext::note_store_write).
  ClientLink::StoreDone store_part(BrokerContext& broker);
  // The store write as one part (nothing to wait for when it is empty or the
  // node stores nothing).
  void submit(ClientLink& link, storage::WriteBatch write);
  void hold(ClientLink& link, mqtt::Packet packet, ClientLink::After after = {});

 private:
  void done_one(bool ok);
  std::mutex mu_;
  size_t pending_ = 0;
  bool ok_ = true;
  ClientLink::Release release_;
};

// Replies once `write` is stored; at once when it is empty or the node
// stores nothing.
void reply_after(ClientLink& link, mqtt::Packet packet, storage::WriteBatch write, ClientLink::After after = {});
// Submits `write` where nothing waits for it (if the node stores anything).
void store(ClientLink& link, storage::WriteBatch write);
// Stored deliveries done with (completed, expired, refused): off the disk, in
// one batch nobody waits for (at worst a restart sends one again, as QoS 1
// allows, or sends its PUBREL). Sequence 0 (not stored) is skipped.
void forget_stored(ClientLink& link, std::span<const uint64_t> sequences, bool released = false);
// A reply to a packet that changed the session's record (CONNECT, SUBSCRIBE,
// UNSUBSCRIBE): for a persistent session, once the record, with the
// connection's will, is stored; else at once.
void reply_when_recorded(ClientLink& link, mqtt::Packet reply, ClientLink::After after = {});
// Where the client's session is copied to: null unless it is a persistent
// session (expiry > 0) of a node that replicates them.
SessionReplication* replication_of(ClientLink& link);
// The same as one part of a gate, for a reply that waits for more.
// The session's replicas (replication_of) are told too, as another part.
// `batch`: more to store with the record (a handed-over session's queue).
void record_session(ClientLink& link, ReplyGate& gate, storage::WriteBatch batch = {});

}  // namespace starling::broker
