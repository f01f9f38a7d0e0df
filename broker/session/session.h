// One client's session: its subscriptions, the messages queued for it, the
// outbound QoS 1/2 messages in flight and the inbound QoS 2 packet ids awaiting
// PUBREL. It outlives connections when the client asked for that.
//
// Threads: deliveries arrive from any worker (enqueue); everything else is
// called from the worker of the connection attached at the time. All state is
// guarded by mu_, held only for short, allocation-light sections.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_set>
#include <vector>

#include <boost/circular_buffer.hpp>

#include "broker/message.h"
#include "broker/mqtt/subscribe.h"

namespace starling::broker {

// What an operator is told about a client's network connection.
struct ConnectionInfo {
  std::string peer;      // "address:port"
  std::string listener;  // "mqtt", "ws"
  std::string protocol;  // "3.1", "3.1.1", "5.0"
  uint16_t keep_alive = 0;
};

// What the session tells the connection attached to it. Implemented by
// Connection; calls may come from any thread and must only post work.
class SessionListener {
 public:
  // Calls `reply` with the connection's details, on the connection's own
  // thread (or never, if it goes away first).
  virtual void describe(std::function<void(const ConnectionInfo&)> reply) { reply(ConnectionInfo{}); }
  virtual ~SessionListener() = default;
  // Messages were queued: flush when convenient (coalesced by the callee).
  virtual void wake() = 0;
  // Another connection took the session over, or the broker is closing it.
  virtual void kick(mqtt::ReasonCode reason) = 0;
  // A session this listener waited on (Session::wait_for_room) has room again,
  // or went offline.
  virtual void room() = 0;
};

struct SubscriptionRecord {
  mqtt::SubscriptionOptions options;
  uint32_t subscription_id = 0;  // 0: none
};

// One message for this session, with what its subscription made of it.
struct Delivery {
  MessagePtr message;
  mqtt::QoS qos = mqtt::QoS::k0;  // granted: min(published, subscribed)
  bool retain = false;            // as it goes out (retain-as-published applied)
  std::vector<uint32_t> subscription_ids;
  // Its sequence number in a persistent session's queue on disk; 0: in memory
  // only. Its packet id follows from it (Session::packet_id_of), so a message
  // sent before a crash goes out again under the same id after it.
  uint64_t sequence = 0;
  bool dup = false;  // restored from disk: it may have been sent before
  // Through a shared group: the session's copies, which are no members, get
  // it from the owner (SessionReplication::queued).
  bool shared = false;
  // A retained message sent because of a SUBSCRIBE: its age is not a delivery
  // latency.
  bool from_retained = false;
};

// A QoS 1/2 delivery sent and not yet completed.
struct Inflight {
  uint16_t packet_id = 0;
  Delivery delivery;
  bool released = false;  // QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
  bool sent = false;      // sent on the current connection (reset when one attaches)
};

// A will as a session record keeps it: the connection's (while connected) or
// the one waiting for its delay (once disconnected).
struct WillRecord {
  MessagePtr message;
  uint32_t delay_s = 0;
};

struct WillMessage {
  MessagePtr message;
  Clock::time_point due;      // publish at (connection loss + will delay)
  Clock::time_point lost_at;  // when the connection was lost; its expiry counts from `due`
};

// How much one session may hold queued (not yet sent): messages, and bytes of
// topic and payload. Beyond either, QoS 1/2 deliveries are refused (the
// publisher hears 0x97) and QoS 0 ones dropped.
//
// Long before that, at the slow-down mark, an online session is congested:
// its publishers stop being read until it has drained to half the mark
// (Session::wait_for_room), so a fast publisher is slowed to its subscribers'
// pace instead of being refused.
struct QueueLimits {
  size_t messages = 100000;
  size_t bytes = 64 * 1024 * 1024;
  size_t slow_down_messages = 1000;
  size_t slow_down_bytes = 1024 * 1024;

  // The slow-down mark never above the hard limit.
  static QueueLimits with_hard_limits(size_t messages, size_t bytes) {
    QueueLimits l;
    l.messages = messages;
    l.bytes = bytes;
    l.slow_down_messages = std::min(l.slow_down_messages, messages);
    l.slow_down_bytes = std::min(l.slow_down_bytes, bytes);
    return l;
  }
};

class Session {
 public:
  // `first_sequence`: the start of this session's range of queue sequence
  // numbers when it is persisted (SessionRegistry hands the ranges out, each
  // at a multiple of kSequenceRange); 0 for a session that never touches the
  // disk. `copy`: a copy (replica) of a session another node owns, never
  // attached to a client; stored apart from a session of the client's own
  // (session_records.h).
  Session(std::string client_id, SessionId id, QueueLimits limits, uint64_t first_sequence = 0, bool copy = false);

  const std::string& client_id() const { return client_id_; }
  bool is_copy() const { return copy_; }
  SessionId id() const { return id_; }
  // Persisted in the node's store (its QoS 1/2 deliveries, subscriptions and
  // state survive a restart). Also this session's epoch on disk: records of
  // an earlier session of the same client id have a smaller one.
  bool persistent() const { return next_sequence_.load(std::memory_order_relaxed) != 0; }
  // Ranges start at multiples of kSequenceRange, and a session never uses up
  // its 2^32 numbers: the start is not kept apart (8 bytes a session).
  static constexpr uint64_t kSequenceRange = uint64_t{1} << 32;
  uint64_t first_sequence() const {
    return next_sequence_.load(std::memory_order_relaxed) & ~(kSequenceRange - 1);
  }
  // Gives a QoS 1/2 delivery to a persistent session its sequence number,
  // for the caller to store before the session sees it; false (nothing to
  // store) for any other delivery.
  bool assign_sequence(Delivery& d);
  // The packet id a stored delivery always goes out under.
  static uint16_t packet_id_of(uint64_t sequence) { return static_cast<uint16_t>(1 + sequence % 65535); }

  // --- any thread ---
  // kOfflineQos0: QoS 0 with no connection; kDroppedQos0: QoS 0 to a full queue.
  // kDuplicate: a late copy of a message a tail brought (already_has).
  enum class Enqueued { kQueued, kOfflineQos0, kDroppedQos0, kQueueFull, kExpired, kDuplicate };
  // Queues a delivery and wakes the attached connection, if any. QoS 0 to a
  // session with no connection is dropped [MQTT-3.1.2-5 allows queuing it; we
  // do not, as Mosquitto by default].
  // `checked`: the caller made sure of room with has_room() (the router does,
  // for every QoS 1/2 subscriber, before delivering to any), so the limit is
  // not applied again; publishers racing past the check overshoot it by one
  // message each at most.
  Enqueued enqueue(Delivery d, Clock::time_point now, bool checked = false);
  // Whether one more QoS 1/2 delivery of `message` fits the queue limits.
  bool has_room(const Message& message) const;
  // Online and queued past the slow-down mark (a hint: read without the lock).
  bool congested() const { return congested_.load(std::memory_order_relaxed); }
  // If the session is still congested, `waiter` is told (SessionListener::room)
  // once it has drained to half the mark or gone offline; returns whether it
  // will be. Each call is answered once.
  bool wait_for_room(std::weak_ptr<SessionListener> waiter);

  // --- the attached connection's worker ---
  // Attaches a connection; returns the one attached before, if any (to kick).
  // In-flight PUBLISHes not yet released are to be sent again on it.
  std::shared_ptr<SessionListener> attach(std::weak_ptr<SessionListener> listener);
  // Deliveries the router matched for this session and has not queued yet
  // (Router::RoutedSession counts them): a session taken out of the router
  // may still get those, and a node handing it over waits for none to be
  // left before it takes the last of its queue.
  void route_begun() { routes_under_way_.fetch_add(1, std::memory_order_relaxed); }
  void route_ended() { routes_under_way_.fetch_sub(1, std::memory_order_release); }
  bool routes_under_way() const { return routes_under_way_.load(std::memory_order_acquire) != 0; }
  // How long such a node waits for them (a worker between route and deliver
  // takes microseconds, unless it was preempted) before it goes on anyway.
  static constexpr std::chrono::milliseconds kUnderWayWait{1000};
  // Ends the session for good (replaced or expired): nothing can subscribe
  // it again. Guarded by the router's lock, see Router::remove_session.
  void mark_ended() { ended_ = true; }
  bool ended() const { return ended_; }
  // Detaches `listener` if it is still the attached one; returns whether it was.
  bool detach(const SessionListener* listener);
  bool online() const;
  // The attached connection, if any.
  std::shared_ptr<SessionListener> listener() const;

  // What `listener` (the attached connection; nothing for any other) may send
  // now, in order: first in-flight PUBLISHes not yet sent on this connection
  // (again, with DUP, under their packet ids [MQTT-4.4.0-1]), then queued
  // deliveries: every QoS 0 one, and QoS 1/2 ones (each given a packet id and
  // an Inflight record) while fewer than `window` are unacknowledged
  // [MQTT-3.3.4-9]. Expired messages are dropped [MQTT-3.3.2-5]. Queued
  // messages are taken up to about `max_bytes` of topic and payload (at least
  // one): the rest stays queued, where it counts towards congestion.
  struct Ready {
    uint16_t packet_id;  // 0 for QoS 0
    Delivery delivery;
    bool dup = false;
  };
  // `expired` counts the expired messages dropped; the sequence numbers of
  // the stored ones among them are added to `forget`, to erase from disk.
  void take_ready(const SessionListener* listener, size_t window, Clock::time_point now, std::vector<Ready>& out,
                  size_t& expired, std::vector<uint64_t>& forget, size_t max_bytes = SIZE_MAX);
  // Drops the queued messages that have expired (an offline session's queue
  // is not looked at otherwise); returns how many, and adds the sequence
  // numbers of the stored ones to `forget`.
  size_t drop_expired(Clock::time_point now, std::vector<uint64_t>& forget);
  // Packet ids of released QoS 2 deliveries, whose PUBREL a resumed session
  // sends again [MQTT-4.4.0-1].
  std::vector<uint16_t> released_ids() const;
  std::vector<Inflight> inflight_snapshot() const;
  // The queue as it stands, in order (a session handed to another node).
  std::vector<Delivery> queued_snapshot() const;
  std::vector<uint16_t> inbound_qos2_snapshot() const;

  // --- a session moving to another node with its client ---
  // Takes everything in flight and queued, in one step: what is queued after
  // is the tail that follows (take_all again).
  struct Taken {
    std::vector<Inflight> inflight;
    std::vector<Delivery> queued;
    // The last delivery completed (complete() or discard()): its worker may
    // not have told the replicas yet.
    MessageId last_completed;
  };
  Taken take_all();
  // The tail another node queued after handing this session over (its copies
  // of messages that came here directly meanwhile included): placed behind
  // the first `handed` queued deliveries (those handed over first) and before
  // what came here directly since; a message that came both ways is kept
  // once, in the tail's place. For a persistent session the moved deliveries
  // are numbered anew: `stored` to write, `forget` to erase. For a while
  // after, a late copy of a tail message is not queued (already_has).
  struct Spliced {
    std::vector<Delivery> stored;
    std::vector<uint64_t> forget;
    size_t duplicates = 0;
  };
  Spliced splice_tail(std::vector<Delivery> tail, size_t handed, Clock::time_point now);
  // Whether `message` came with a recent tail (splice_tail). Cheap when no
  // tail came.
  bool already_has(const Message& message);
  static constexpr std::chrono::seconds kTailMemory{60};

  // --- a replica of a session another node owns (SessionRegistry) ---
  // A late copy of any of `ids` (which came with a session handed over) is
  // not queued for a while (already_has).
  void remember_ids(std::span<const MessageId> ids, Clock::time_point now);
  // The ids remembered so that are neither queued nor in flight here: for a
  // copy, what the owner's client is done with (a copy taken into a session
  // passes them on).
  std::vector<MessageId> done_ids() const;
  // Drops the queued deliveries of `ids` (the owner's client has them); an
  // id not queued yet is remembered for a while, so that its copy arriving
  // late is not queued (already_has). Returns how many it dropped.
  // The sequence numbers of the stored ones dropped go to `forget` (if
  // given), to erase from disk.
  size_t forget_ids(std::span<const MessageId> ids, Clock::time_point now, std::vector<uint64_t>* forget = nullptr);
  // Queues those of `deliveries` not queued or in flight already (by
  // MessageId), behind what is queued; returns how many. A persistent
  // session numbers them, and adds them to `stored` (if given) to write.
  // Their ids are remembered (already_has): a copy of one coming later by
  // another way (a forward sent again) is not queued a second time.
  size_t merge_queued(std::vector<Delivery> deliveries, Clock::time_point now,
                      std::vector<Delivery>* stored = nullptr);
  // The epoch (ClusterLink::Takeover::ticket) of the last CONNECT in a
  // cluster that opened or resumed it, kept on disk with the session; 0:
  // none. Of two copies of one session on two nodes (one left behind by a
  // node that was down), the one with the later epoch is the client's.
  uint64_t connect_epoch() const { return connect_epoch_.load(std::memory_order_relaxed); }
  void set_connect_epoch(uint64_t epoch) { connect_epoch_.store(epoch, std::memory_order_relaxed); }
  // Counts the PUBLISHes its connections sent (MessageId::serial).
  uint64_t count_published() { return published_.fetch_add(1, std::memory_order_relaxed) + 1; }
  // What complete(), release() and discard() found: whether the packet id was
  // in flight (as expected), and the delivery's sequence number (0: not stored).
  struct Found {
    bool known = false;
    uint64_t sequence = 0;
    MessageId id;  // the delivered message's (to tell the session's replicas)
    // The queue and window ran empty after at least kCompactAfterBytes of
    // stored messages completed: their space on disk can be reclaimed.
    bool drained = false;
    explicit operator bool() const { return known; }
  };
  static constexpr size_t kCompactAfterBytes = 16 * 1024 * 1024;
  // PUBACK (QoS 1) or PUBCOMP (QoS 2): frees the slot.
  Found complete(uint16_t packet_id, mqtt::QoS expected);
  // PUBREC: marks released. Unknown if not QoS 2.
  Found release(uint16_t packet_id);
  // Forgets an in-flight delivery that could not be sent (too large, or
  // refused by the client).
  Found discard(uint16_t packet_id);
  size_t inflight_count() const;
  size_t queued_count() const;
  // Frees what an empty queue and window still hold (their buffers), and
  // other buffers left from a burst. The connection calls it now and then
  // (with its keep-alive check), so the hot path keeps its buffers meanwhile.
  void trim();

  // Inbound QoS 2: kNew (deliver it), kDuplicate (a retransmission already
  // delivered [MQTT-4.3.3-9]: acknowledge only), or kOverLimit (a new one while
  // `limit` are awaiting PUBREL: Receive Maximum exceeded [MQTT-3.3.4-9]).
  enum class Inbound { kNew, kDuplicate, kOverLimit };
  Inbound begin_inbound_qos2(uint16_t packet_id, size_t limit);
  bool end_inbound_qos2(uint16_t packet_id);  // PUBREL
  size_t inbound_qos2_count() const;

  // Subscriptions, by filter as the client sent it ($share/... included).
  // Returns whether the filter is new.
  bool add_subscription(const std::string& filter, const SubscriptionRecord& record);
  bool remove_subscription(const std::string& filter);
  std::map<std::string, SubscriptionRecord> subscriptions() const;

  // Session expiry (seconds) in force once the connection is gone; UINT32_MAX: never.
  void set_expiry_interval(uint32_t seconds);
  uint32_t expiry_interval() const;
  // When the last connection went away; nullopt while one is attached.
  std::optional<Clock::time_point> disconnected_at() const;

  // The will of the last connection, waiting for its delay (v5) to pass.
  // Stored only while no connection is attached: one that attached since
  // cancels it [MQTT-3.1.3-9]. Returns whether it was stored.
  bool set_pending_will_if_offline(WillMessage will);
  // A connection resumed the session within the will delay [MQTT-3.1.3-9].
  void cancel_pending_will();
  std::optional<WillMessage> take_pending_will();
  std::optional<Clock::time_point> pending_will_due() const;
  // The will this session's copies keep: should this node die, the node
  // that adopts the session publishes it. The attached connection's, or
  // after a connection loss the one waiting for its delay; none once it
  // went out or the client disconnected normally.
  void set_copied_will(std::optional<WillRecord> will);
  std::optional<WillRecord> copied_will() const;
  // Drops it unless a connection is attached (which set its own); returns
  // whether there was one to drop.
  bool drop_copied_will_if_offline();

  // --- start-up, before any connection: the state read back from disk ---
  // Queued (in sequence order), behind what is queued already.
  void restore_queued(Delivery d);
  // The queued delivery with `sequence` was released (PUBREC received): it
  // goes back in flight, its PUBREL to be sent again. False if not queued.
  bool restore_released(uint64_t sequence);
  void restore_inbound_qos2(uint16_t packet_id);
  // A delivery another node's session had in flight under `packet_id`
  // (`released`: its PUBREL was sent), in flight here under the same id: the
  // client may hold that id. assign_sequence_for first, for a stored one:
  // its sequence is chosen so that the id follows from it (packet_id_of),
  // and a restart sends it under the same id too.
  bool assign_sequence_for(Delivery& d, uint16_t packet_id);
  void restore_inflight(Delivery d, uint16_t packet_id, bool released);
  void restore_offline(Clock::time_point disconnected_at, uint16_t last_packet_id);
  uint16_t last_packet_id() const;

 private:
  uint16_t next_packet_id_locked();
  static constexpr size_t kNotInflight = SIZE_MAX;
  size_t find_inflight_locked(uint16_t packet_id) const;
  void erase_inflight_locked(size_t i);
  // Clears the congestion when the queue is at or below `messages`/`bytes`
  // (or always, when `force`); returns the waiters to tell, outside the lock.
  std::vector<std::weak_ptr<SessionListener>> relieve_locked(size_t messages, size_t bytes, bool force);
  static void tell_room(std::vector<std::weak_ptr<SessionListener>> waiters);

  const std::string client_id_;
  const SessionId id_;
  const QueueLimits limits_;

  mutable std::mutex mu_;
  std::weak_ptr<SessionListener> listener_;  // guarded by mu_
  const SessionListener* listener_raw_ = nullptr;
  // The queue and the in-flight window. Made by the first delivery and
  // dropped by trim() once both are empty, so a quiet session holds neither.
  struct Flow {
    // Ring buffers grown by doubling, released once drained after a burst.
    boost::circular_buffer<Delivery> queue;
    size_t queued_bytes = 0;
    // In flight, in send order (the order of redelivery), and their packet
    // ids, compact for the lookups: the window is small, acknowledgements
    // mostly in order.
    boost::circular_buffer<Inflight> inflight;
    std::vector<uint16_t> inflight_ids;
    size_t inflight_unsent = 0;  // in inflight with sent == false
    size_t completed_stored_bytes = 0;  // since the queue last ran empty (Found::drained)
  };
  static const Flow kNoFlow;
  const Flow& flow_locked() const { return flow_ ? *flow_ : kNoFlow; }
  Flow& make_flow_locked() {
    if (!flow_) flow_ = std::make_unique<Flow>();
    return *flow_;
  }
  void drop_flow_if_empty_locked();
  std::unique_ptr<Flow> flow_;
  std::vector<std::weak_ptr<SessionListener>> room_waiters_;
  std::atomic<bool> congested_{false};     // written under mu_
  uint16_t last_packet_id_ = 0;
  std::atomic<uint64_t> next_sequence_;  // 0: not persistent
  std::vector<uint16_t> inbound_qos2_;  // sorted; small (at most Receive Maximum)
  std::map<std::string, SubscriptionRecord> subscriptions_;
  uint32_t expiry_interval_ = 0;
  std::optional<Clock::time_point> disconnected_at_ = Clock::now();
  std::unique_ptr<WillMessage> pending_will_;  // rare: a pointer
  std::unique_ptr<WillRecord> copied_will_;    // rare too
  std::atomic<bool> ended_{false};
  std::atomic<uint32_t> routes_under_way_{0};
  std::atomic<uint64_t> published_{0};
  std::atomic<uint64_t> connect_epoch_{0};
  MessageId last_completed_;  // guarded by mu_ (Taken::last_completed)
  // The ids of recent tails (splice_tail) and of messages a replica was
  // told are done with (forget_ids), until they are forgotten.
  // Kept for between one and two kTailMemory: ids go into `current`, which
  // becomes `previous` when it is time, so a replica that hears of many
  // keeps a bounded set.
  struct RecentIds {
    std::unordered_set<MessageId, MessageIdHash> current;
    std::unordered_set<MessageId, MessageIdHash> previous;
    Clock::time_point rotate_at;
  };
  void remember_locked(const MessageId& id, Clock::time_point now);
  bool remembered_locked(const MessageId& id, Clock::time_point now);
  std::unique_ptr<RecentIds> recent_;  // guarded by mu_; rare
  std::atomic<bool> has_recent_{false};
  const bool copy_;
};

}  // namespace starling::broker
