// What a node tells the other nodes that keep copies (replicas) of its
// persistent sessions, so that one of them can resume a session when this
// node dies (DESIGN.md "Cluster": Sessions). cluster/replication implements
// it; a single node has none (ClusterLink::replication is null).
//
// Messages reach a replica the way they reach the owner: the replica's copy
// is subscribed there, so every node forwards a matching message to it too,
// and a publisher's PUBACK waits for it. What the owner tells it is what
// only the owner sees: subscriptions, and what the client acknowledged.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "broker/message.h"
#include "broker/session/session.h"

namespace starling::broker {

class SessionReplication {
 public:
  // Called once, with true, when the replicas have it or a bounded wait
  // passed (a replica that could not be reached is filled again later): the
  // reply to the client goes out either way.
  using Done = std::function<void(bool ok)>;
  virtual ~SessionReplication() = default;
  // A persistent session opened, resumed or changed its subscriptions here:
  // its replicas get its subscriptions and expiry, then what it has queued
  // and in flight. `done` once they have all of it and their routes are
  // known, so a message acknowledged after it reaches them too.
  virtual void recorded(const std::shared_ptr<Session>& session, Done done) = 0;
  // The client sent PUBREC for `id` under `packet_id`: `done` once the
  // replicas know, so that after this node's death the PUBREL (not the
  // PUBLISH, which the client would take for a new message) goes again.
  virtual void released(const Session& session, const MessageId& id, uint16_t packet_id, Done done) = 0;
  // A QoS 2 delivery went out under `packet_id`: should this node die, it
  // goes again under the same id, which the client may hold. Nobody waits:
  // a copy that missed it sends it under a new id (delivered once all the
  // same; the client keeps the old id waiting for a PUBREL).
  virtual void sent(const Session& session, const MessageId& id, uint16_t packet_id) = 0;
  // The client acknowledged `id` (or refused it): the replicas drop it.
  // Nobody waits: at worst a replica that resumes the session sends it
  // again, as QoS 1 allows.
  virtual void completed(const Session& session, const MessageId& id) = 0;
  // The ids completed() was told that some replica has not answered yet:
  // a session handed to another node takes them along, so that the copy
  // there (or one sending its queue back) does not deliver them again.
  virtual std::vector<MessageId> unconfirmed_completions(const Session& session) const = 0;
  // Inbound QoS 2: the client's PUBLISH under `packet_id` was delivered
  // (`done` once the replicas know it, before the PUBREC goes: should this
  // node die, the client's retransmission is not delivered again), or
  // `released` by its PUBREL (nobody waits; `done` may be empty).
  virtual void inbound_qos2(const Session& session, uint16_t packet_id, bool released, Done done) = 0;
  // The session's copied_will() changed after it was recorded (the client
  // disconnected, or its will went out): the replicas keep the new one.
  // Nobody waits: at worst an adopter publishes a will that went out here.
  virtual void will_changed(const Session& session) = 0;
  // A QoS 1/2 delivery queued for the session through a shared group (the
  // copies are no members, so no node forwards it to them): `done(ok)` once
  // every copy has it, not ok when one did not answer (the publisher is not
  // acknowledged then, as when a forward fails).
  virtual void queued(const Session& session, const Delivery& delivery, Done done) = 0;
};

}  // namespace starling::broker
