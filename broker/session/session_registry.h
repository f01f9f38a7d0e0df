// Every session on this node, by client id: opening (new, resumed or taken
// over), closing, and the clock-driven parts (delayed wills, session expiry).
//
// Threads: called from any worker; mu_ guards the map and is never held while
// calling into a Session's listener or the router.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/routing/retained_store.h"
#include "broker/routing/router.h"
#include "broker/session/session.h"
#include "broker/session/session_records.h"
#include "broker/stored_message.h"
#include "storage/kv_store.h"
#include "storage/result.h"

namespace starling::storage {
class GroupCommit;
}

namespace starling::broker {

class SessionReplication;

// A session as it moves to another node with its client: what the new node
// needs to resume it.
struct HandedSession {
  // False: the client had a session there, but it is not resumed (clean
  // start, or expiry 0); the rest is empty.
  bool resumed = false;
  std::vector<std::pair<std::string, SubscriptionRecord>> subscriptions;
  // Sent and not completed: again with DUP under the same packet id, or, once
  // released, their PUBREL.
  std::vector<Inflight> inflight;
  std::vector<Delivery> deliveries;  // the queue, in order
  std::vector<uint16_t> inbound_qos2;
  // Completed there, perhaps not yet dropped by the session's copies (or
  // still on their way to them): not queued again from a copy.
  std::vector<MessageId> completed;
  uint64_t connect_epoch = 0;  // Session::connect_epoch there
  // The old node keeps the session subscribed, queuing, until the new node
  // has announced its routes and calls for the rest (SessionRegistry::release).
  bool held = false;
};

class SessionRegistry {
 public:
  SessionRegistry(Router& router, RetainedStore& retained, QueueLimits queue_limits);

  struct Opened {
    std::shared_ptr<Session> session;
    bool present = false;  // an existing session was resumed
  };
  // For a CONNECT: a connection already attached to the client id's session is
  // asked to close with 0x8E [MQTT-3.1.4-3]; a pending delayed will of the
  // session is cancelled [MQTT-3.1.3-9]; with clean start the old session ends
  // [MQTT-3.1.2-4], otherwise it is resumed [MQTT-3.1.2-5] unless its expiry
  // was 0 (it ends with the connection being replaced).
  // The new connection is attached before the registry lock is released, so
  // the old connection closing meanwhile cannot end a session being resumed.
  // With a store, a new session with an expiry is persistent, and an ended
  // persistent one is erased from the store; the caller then writes the
  // session (write_session) with its connection's will.
  Opened open(const std::string& client_id, bool clean_start, uint32_t expiry_interval,
              std::weak_ptr<SessionListener> listener);

  using Done = std::function<void(const storage::Status&)>;
  // Adds `session`'s record (with `will`, the connection's while it is
  // connected) to `batch` and submits it, if the session is persistent and
  // still the client id's; `done` hears when it is stored (at once, with
  // success, when there was nothing to write). Serialised with open() and
  // the ending of sessions, so the store sees these in the order they
  // happened here.
  void write_session(const std::shared_ptr<Session>& session, const WillRecord* will, storage::WriteBatch batch,
                     Done done);

  // The connection attached to `session` went away (after detaching). `will`
  // is published now when its delay is 0, else when the delay passes or the
  // session ends, whichever comes first. A session with expiry 0 ends now.
  void closed(const std::shared_ptr<Session>& session, std::optional<WillMessage> will, Clock::time_point now);

  // Publishes due wills and ends sessions whose expiry passed. Called
  // periodically.
  void sweep(Clock::time_point now);
  // Drops the expired messages queued for offline sessions (from the store
  // too); returns how many. Called now and then: it reads every such queue.
  size_t drop_expired_messages(Clock::time_point now);

  // A client identifier for a client that sent none [MQTT-3.1.3-6].
  std::string assign_client_id();

  size_t size() const;

  // For metrics and the admin API (they lock each session briefly).
  struct Census {
    size_t connected = 0;
    size_t offline = 0;
    size_t queued = 0;    // messages not yet sent
    size_t inflight = 0;  // sent, awaiting acknowledgement
  };
  Census census() const;
  std::shared_ptr<Session> find(const std::string& client_id) const;
  // The sessions whose client id starts with `prefix`, ordered by client id.
  std::vector<std::shared_ptr<Session>> with_prefix(std::string_view prefix) const;
  // Asks every attached connection to close with `reason` (e.g. server
  // shutting down); returns how many were asked.
  size_t kick_all(mqtt::ReasonCode reason) const;

  // Publishes a message that no connection sent (a will, $SYS): to the
  // retained store when it is retained, then to subscribers.
  // `store_retained`: a retained one is written to the node's store too.
  void publish_internal(const MessagePtr& message, Clock::time_point now, bool store_retained = false);
  // A message another node forwarded: queued for the matching sessions here,
  // all or none (kAllOrNone), stored for persistent ones first; `done(true)`
  // once stored, false when a subscriber had no room or the store failed.
  // `shared_groups`: the groups this node delivers it to (Router::route).
  void deliver_forwarded(const MessagePtr& message, const std::vector<std::string>& shared_groups,
                         std::function<void(bool ok)> done);
  // The QoS 1/2 deliveries of `route` to a persistent session through a
  // shared group (empty without copies): no node forwards them to the
  // session's copies, so copy_shared sends them there, and `done(ok)` once
  // every copy has them. Taken before Router::deliver (it moves them).
  using Picks = std::vector<std::pair<std::shared_ptr<Session>, Delivery>>;
  Picks shared_for_copies(const Router::Route& route) const;
  void copy_shared(const Picks& picks, std::function<void(bool ok)> done);
  // Where copy_shared sends; set once by the cluster before it serves.
  void set_replication(SessionReplication* replication) { replication_ = replication; }
  // Another node has a CONNECT for `client_id`: its connection here is told
  // to go (0x8E) and its session ends here. nullopt: no session here;
  // otherwise what the other node needs to resume it (empty with
  // clean_start, or when the session would not have been resumed).
  // A resumed session with subscriptions is held (HandedSession::held) under
  // `key` when it is not 0: still subscribed here and queuing, so that a
  // message routed here before the other node's routes are known everywhere
  // is not lost, until release() or kReleaseWait.
  std::optional<HandedSession> hand_over(const std::string& client_id, bool clean_start, uint64_t key = 0);
  // The end of a held session here: what it queued since hand_over, in
  // order; its routes go. nullopt when there is none under `key` (released
  // already, or waited for too long).
  std::optional<std::vector<Delivery>> release(const std::string& client_id, uint64_t key);
  // The first half of release(): the held session's routes go, so no new
  // message is routed to it; one routed just before may still be on its way
  // into its queue (release() takes it once the session has no routes under
  // way). Returns the held session; null when none is held under `key`.
  std::shared_ptr<Session> unroute_held(const std::string& client_id, uint64_t key);
  static constexpr std::chrono::seconds kReleaseWait{10};
  // Sessions handed over and not yet released, nor given up on (kReleaseWait
  // passed by `now`): a draining node waits for them, what they queue
  // meanwhile is their new node's.
  size_t held_count(Clock::time_point now) const;
  // A session just opened here takes over what another node handed: its
  // subscriptions (routes announced), and its deliveries, stored with
  // `batch` for a persistent session. Returns how many it queued (for
  // splice_released).
  size_t adopt(const std::shared_ptr<Session>& session, HandedSession handed, storage::WriteBatch& batch);
  // What the old node queued for a held session meanwhile (release there),
  // behind the first `handed` queued deliveries; `done(ok)` once stored.
  void splice_released(const std::shared_ptr<Session>& session, std::vector<Delivery> tail, size_t handed,
                       std::function<void(bool ok)> done);
  // The offline persistent sessions, with their connect epochs: after a
  // restart, copies of sessions that may have moved on meanwhile. With
  // `online_too`, every session with an expiry (after a partition).
  std::vector<std::pair<std::string, uint64_t>> offline_epochs(bool online_too = false) const;
  // The client's session's connect epoch; nullopt: no session here.
  std::optional<uint64_t> connect_epoch_of(const std::string& client_id) const;
  // Ends the client's offline session here if its connect epoch is still
  // `epoch` (another node has a newer copy): its routes and records go; its
  // will is not published, its client lives on elsewhere. `online_too`: a
  // connection attached to it is told to go (0x8E): it is older than the
  // client's CONNECT elsewhere (a partition kept the two apart).
  bool drop_stale(const std::string& client_id, uint64_t epoch, bool online_too = false);
  // --- replicas: this node's copies of sessions other nodes own ---
  // (session_replicas.cpp; SessionReplication is the owner's side.) A copy
  // is a session in memory that no client attaches to: subscribed here like
  // the owner's session (shared subscriptions excepted), so a message for it
  // is queued here too, until the owner says the client has it (forget).
  // When the node stores sessions, a copy is stored too (session_records.h;
  // a message for it is on disk before this node acknowledges it to the
  // node that forwarded it). Owners' updates are taken only from the copy's
  // current owner.
  struct ReplicaTerms {
    std::string owner;
    uint64_t generation = 0;  // the owner's session
    uint32_t expiry_interval = 0;
    uint64_t connect_epoch = 0;
    std::vector<std::pair<std::string, SubscriptionRecord>> subscriptions;  // all of them
    std::vector<std::string> replicas;  // the nodes with a copy
    std::optional<WillRecord> will;     // the owner's Session::copied_will
  };
  // Makes or updates the copy. Refused (nothing changes) when a session of
  // the client here, or a copy from another owner, has a newer connect
  // epoch; an older offline one here is dropped as stale.
  struct ReplicaOpened {
    bool refused = false;
    bool routes_added = false;
    // The copy was another owner's, or another session's of the owner (the
    // session moved): it may hold what the new one lacks (replica_queue).
    bool owner_changed = false;
  };
  ReplicaOpened replica_open(const std::string& client_id, ReplicaTerms terms);
  // The owner's in-flight and queued deliveries: those the copy lacks are
  // queued; `released` ones (QoS 2, PUBREC received) keep their packet id.
  // `inbound_qos2`: every inbound QoS 2 packet id of the client's awaiting
  // PUBREL there.
  void replica_fill(const std::string& client_id, const std::string& owner, std::vector<Inflight> inflight,
                    std::vector<Delivery> deliveries, std::span<const uint16_t> inbound_qos2 = {});
  // Inbound QoS 2 packet ids of the client's: received, or (plus 65536)
  // released, in order.
  void replica_inbound(const std::string& client_id, const std::string& owner, std::span<const uint32_t> changes);
  // Deliveries the owner queued through a shared group: those the copy
  // lacks are queued (and stored).
  void replica_queued(const std::string& client_id, const std::string& owner, std::vector<Delivery> deliveries);
  void replica_forget(const std::string& client_id, const std::string& owner, std::span<const MessageId> ids);
  void replica_released(const std::string& client_id, const std::string& owner, const MessageId& id,
                        uint16_t packet_id);
  // A QoS 2 delivery the owner sent under `packet_id` (it keeps the id when
  // the copy is promoted).
  void replica_sent(const std::string& client_id, const std::string& owner, const MessageId& id, uint16_t packet_id);
  void replica_drop(const std::string& client_id, const std::string& owner);
  // An owner that started anew confirms its copies: unconfirm marks every
  // copy it owns here, replica_open confirms one, and drop_unconfirmed drops
  // those it did not open again (sessions it no longer has, or whose copy
  // it now keeps elsewhere). Returns how many went.
  void unconfirm_replicas(const std::string& owner);
  size_t drop_unconfirmed_replicas(const std::string& owner);
  struct ReplicaOf {
    std::string owner;
    std::vector<std::string> replicas;
    Clock::time_point opened;  // when this node made the copy
  };
  std::optional<ReplicaOf> replica_of(const std::string& client_id) const;
  // Every copy here: client id, owner and the nodes with copies.
  std::vector<std::pair<std::string, ReplicaOf>> replicas() const;
  size_t replica_count() const;
  // The will the owner's session now has its copies keep (none: nullopt).
  void replica_will(const std::string& client_id, const std::string& owner, std::optional<WillRecord> will);
  // The owner is gone: the copy becomes this node's offline session (its
  // routes stay: a message published meanwhile is queued), persisted when
  // the node stores sessions, with `connect_epoch` (newer than the old
  // owner's, whose copy is then the stale one). The will the copy kept goes
  // out (after its delay, unless the client is back by then). False when
  // there is no copy (or a session of the client is here already: the copy
  // just goes).
  bool promote(const std::string& client_id, uint64_t connect_epoch);
  // A CONNECT opened the client's session here: a copy of it here goes (this
  // node owns the session now). What the copy has that the session lacks
  // (it came while the old owner was dead, or before its routes were known)
  // is queued behind what the session has, and stored with `batch`; with
  // `discard` (clean start), nothing is.
  // Returns how many messages came from the copy.
  size_t absorb_replica(const std::shared_ptr<Session>& session, bool discard, storage::WriteBatch& batch);
  // What a copy sent back to its owner (which started anew, without what
  // came to the copy while it was down): queued behind what the client's
  // session here has, when it lacks it; stored.
  size_t merge_from_replica(const std::string& client_id, std::vector<Delivery> deliveries);
  // The copy's queue, without what the client released (QoS 2 PUBREC):
  // what its owner may lack. Empty when there is no copy from `owner`.
  std::vector<Delivery> replica_queue(const std::string& client_id, const std::string& owner) const;
  // This node's sessions that outlive their connections (expiry > 0): what
  // it copies to replicas.
  std::vector<std::shared_ptr<Session>> lasting_sessions() const;

  // --- copies read back from disk at start (restore) ---
  // Such a copy is dormant: not routed, not updated. Its owner may have
  // moved on meanwhile (completed messages, or the session moved), so it is
  // used only when nobody else has the session or a current copy of it
  // (both its owner and this node died); else it goes. An owner's
  // replica_open replaces it.
  struct Dormant {
    std::string owner;
    std::vector<std::string> replicas;  // the nodes with a copy then
  };
  std::vector<std::pair<std::string, Dormant>> dormant_copies() const;
  std::optional<Dormant> dormant_of(const std::string& client_id) const;
  void drop_dormant(const std::string& client_id);
  // The dormant copy becomes this node's offline session, as promote() does.
  bool promote_dormant(const std::string& client_id, uint64_t connect_epoch);

  // A retained message (or a topic's clearing) another node sent: into the
  // retained store and the node's store; `done(ok)` once stored.
  void retain_forwarded(const MessagePtr& message, std::function<void(bool ok)> done);
  RetainedStore& retained() { return retained_; }
  // The same, and a retained will is written to the node's store too (no one
  // waits for it: its client is gone).
  void publish_will(const WillMessage& will, Clock::time_point now);
  // Where retained wills and persistent sessions are written. Set once by the
  // server before the first connection (after restore()), read only after.
  void set_store(storage::GroupCommit* commits) { commits_ = commits; }

  // Start-up: brings back the persistent sessions of `store` (offline, with
  // their subscriptions in the router, queues, in-flight state, inbound QoS 2
  // ids and delayed wills). Sessions expired meanwhile are erased and their
  // wills published; records left behind by ended sessions are erased. A
  // damaged record fails the whole load (the node must not start).
  struct Restored {
    size_t sessions = 0;
    size_t queued = 0;    // messages
    size_t expired = 0;   // sessions
    size_t dropped = 0;   // stale or expired records erased
    size_t copies = 0;    // of other nodes' sessions (dormant)
  };
  storage::Result<Restored> restore(storage::KvStore& store, const ClockPair& now);
  // `done(ok)` once everything submitted to the store so far is written (at
  // once when the node stores nothing). On the committer's thread: hand over.
  void after_written(std::function<void(bool ok)> done);

 private:
  void end_session(const std::shared_ptr<Session>& session, Clock::time_point now);
  // Submits `batch` if the node stores anything; nothing waits for it. A
  // write that goes with a change to the session map is submitted with mu_
  // held, so the store sees those changes in order.
  void submit(storage::WriteBatch batch);
  // Everything stored under the client id goes (mu_ held).
  void erase_stored_locked(std::string_view client_id);
  uint64_t new_first_sequence();
  // Erases what Router::deliver stored but did not queue (nobody waits).
  void forget_unqueued(const Router::Published& published);
  using Map = std::unordered_map<std::string, std::shared_ptr<Session>>;
  // `session`'s entry, or end() when another session replaced it under its
  // client id.
  Map::iterator find_current_locked(const Session& session);

  Router& router_;
  RetainedStore& retained_;
  storage::GroupCommit* commits_ = nullptr;
  SessionReplication* replication_ = nullptr;
  const QueueLimits queue_limits_;
  std::atomic<SessionId> next_id_{1};
  // Each persistent session takes the next range of 2^32 queue sequence
  // numbers; its first one is its epoch on disk. restore() moves this past
  // everything stored.
  static constexpr uint64_t kSequenceRange = Session::kSequenceRange;
  std::atomic<uint64_t> next_first_sequence_{kSequenceRange};
  mutable std::mutex mu_;
  Map sessions_;  // guarded by mu_
  // The sessions left without a connection: the only ones sweep() looks at,
  // so thousands of connected clients cost it nothing. Guarded by mu_.
  std::unordered_set<std::shared_ptr<Session>> offline_;
  // Sessions handed over and held (hand_over), by client id. Guarded by mu_.
  struct Held {
    std::shared_ptr<Session> session;
    uint64_t key = 0;
    Clock::time_point until;
  };
  std::unordered_map<std::string, Held> held_;
  // Copies of other nodes' sessions, by client id. Guarded by mu_.
  struct Replica {
    std::shared_ptr<Session> session;
    std::string owner;
    uint64_t generation = 0;
    std::vector<std::string> replicas;
    bool unconfirmed = false;  // unconfirm_replicas
    Clock::time_point opened = Clock::now();
    // QoS 2 deliveries the client sent PUBREC for, and those sent: their
    // packet ids.
    std::unordered_map<MessageId, uint16_t, MessageIdHash> released;
    std::unordered_map<MessageId, uint16_t, MessageIdHash> sent;
    std::vector<uint16_t> inbound_qos2;  // sorted
    // Published by promote (the owner died with the client's connection);
    // in the copy's record on disk too.
    std::optional<WillRecord> will;
  };
  std::unordered_map<std::string, Replica> replicas_;
  // Read back at start and not opened since (dormant_copies). Guarded by mu_.
  std::unordered_map<std::string, Replica> dormant_;
  // A copy stored when the node stores sessions (mu_ held).
  std::shared_ptr<Session> new_copy_locked(const std::string& client_id);
  // The copy of `client_id` from `owner`, or null (mu_ held).
  Replica* replica_locked(const std::string& client_id, const std::string& owner);
  // Takes the client's copy out, if any, and erases it from the store (mu_
  // held); the caller unroutes it.
  std::shared_ptr<Session> take_replica_locked(const std::string& client_id);
  // replica_released and replica_sent: the packet id, kept and stored.
  void set_copy_packet(const std::string& client_id, const std::string& owner, const MessageId& id,
                       uint16_t packet_id, bool released);
  // Session::merge_queued, and the records of what it queued with `batch`
  // (a persistent session's). Returns how many it queued.
  size_t merge_stored(Session& session, std::vector<Delivery> deliveries, storage::WriteBatch& batch);
  // Erases the client's stored copy (mu_ held: in order with its writes).
  void erase_copy_locked(const std::string& client_id);
  // The copy's packet ids of `ids` go (mu_ held), and their records with
  // `batch`.
  void forget_packets_locked(Replica& r, std::span<const MessageId> ids, storage::WriteBatch& batch);
  // Takes the copy out of replicas_ (mu_ held) and makes it this node's
  // session, as promote() describes.
  bool promote_locked(std::unique_lock<std::mutex>& lock, std::unordered_map<std::string, Replica>& from,
                      const std::string& client_id, uint64_t connect_epoch);
  // Ends a held session here (out of held_): its routes go, and what it
  // queued is erased from the store and returned.
  std::vector<Delivery> end_held(const std::shared_ptr<Session>& session);
  // Takes a copy out of the router and waits (at most
  // Session::kUnderWayWait) for the deliveries the router matched to it
  // before: what is taken from it next includes them, instead of one landing
  // in it afterwards, lost.
  void unroute_settled(Session& copy);
  // The session's copied will went out, or its connection ended without one
  // waiting: its copies drop theirs (unless a connection attached since).
  void drop_copied_will(Session& session);
};

}  // namespace starling::broker
