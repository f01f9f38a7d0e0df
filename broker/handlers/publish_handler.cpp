// PUBLISH from a client, and PUBREL, which completes an inbound QoS 2 PUBLISH.
#include "broker/handlers/handlers.h"
#include "broker/routing/retained_persistence.h"

namespace starling::broker {
namespace {

using mqtt::QoS;
using mqtt::ReasonCode;

// Resolves a topic alias [MQTT-3.3.2-7..12]. Returns nullptr (after closing)
// when the alias is invalid.
const std::string* resolve_topic(ClientLink& link, const mqtt::Publish& p, std::string& scratch) {
  ClientState& st = link.state();
  if (!p.properties.topic_alias) {
    scratch.assign(p.topic);
    return &scratch;
  }
  const uint16_t alias = *p.properties.topic_alias;
  if (alias == 0 || alias > link.broker().limits.topic_alias_maximum) {
    link.close(ReasonCode::kTopicAliasInvalid, false, "topic alias 0 or above Topic Alias Maximum");
    return nullptr;
  }
  auto& inbound = st.topic_aliases().inbound;
  if (inbound.size() <= alias) inbound.resize(alias + 1u);
  std::string& slot = inbound[alias];
  if (!p.topic.empty()) {
    slot.assign(p.topic);
  } else if (slot.empty()) {
    link.close(ReasonCode::kProtocolError, false, "topic alias used before it was set");
    return nullptr;
  }
  return &slot;
}

}  // namespace

void handle_publish(ClientLink& link, const mqtt::Publish& p, const mqtt::SharedBytes& backing) {
  ClientState& st = link.state();
  BrokerContext& broker = link.broker();
  // A client must not send Subscription Identifiers [MQTT-3.3.4-6].
  if (!p.properties.subscription_identifiers.empty())
    return link.close(ReasonCode::kProtocolError, false, "subscription identifier in PUBLISH");
  std::string scratch;
  const std::string* topic = resolve_topic(link, p, scratch);
  if (topic == nullptr) return;
  if (!topic_within_limits(*topic, broker.limits))
    return link.close(ReasonCode::kTopicNameInvalid, false, "topic longer or deeper than this broker allows");

  const size_t qos = Stats::qos_index(p.qos);
  TrafficCounters& counted = link.traffic();
  counted.messages_received[qos].fetch_add(1, std::memory_order_relaxed);
  counted.payload_bytes_received[qos].fetch_add(p.payload.size(), std::memory_order_relaxed);
  const auto ack = [&](ReasonCode code) {
    return p.qos == QoS::k1 ? pub_response<mqtt::Puback>(p.packet_id, code)
                            : pub_response<mqtt::Pubrec>(p.packet_id, code);
  };
  if (p.qos == QoS::k2) {
    // Flow control: QoS 2 messages awaiting PUBREL count against our Receive
    // Maximum; QoS 1 ones are acknowledged at once [MQTT-3.3.4-9]. A
    // retransmission adds nothing and is acknowledged only [MQTT-4.3.3-9].
    const size_t limit = st.version == mqtt::ProtocolVersion::kV5 ? broker.limits.receive_maximum : SIZE_MAX;
    switch (st.session->begin_inbound_qos2(p.packet_id, limit)) {
      case Session::Inbound::kDuplicate: return link.reply(ack(ReasonCode::kSuccess));
      case Session::Inbound::kOverLimit:
        return link.close(ReasonCode::kReceiveMaximumExceeded, false,
                          "more unacknowledged QoS 2 PUBLISH than Receive Maximum");
      case Session::Inbound::kNew: break;
    }
  }

  const ClockPair now;
  const MessageId id{broker.message_origin, st.session->id(), st.session->count_published()};
  auto message =
      make_message(*topic, p.payload, p.qos, p.retain, p.properties, st.session->id(), backing, now.steady, id);
  Router::Route route = broker.router.route(message);
  if (route.quota_exceeded) {
    broker.stats.count_drop(DropReason::kQueueFull);
    // Refused, not lied to: no subscriber got it. MQTT 5 says so with 0x97;
    // 3.1.1 has no way to refuse, so the connection is closed unacknowledged
    // and the client sends the message again when it reconnects
    // [MQTT-4.4.0-1].
    if (p.qos == QoS::k2) st.session->end_inbound_qos2(p.packet_id);
    if (st.version != mqtt::ProtocolVersion::kV5) {
      broker.log.debug("{}: a subscriber's queue is full; closing the 3.1.1 publisher unacknowledged", st.client_id());
      return link.close(std::nullopt, false);
    }
    return link.reply(ack(ReasonCode::kQuotaExceeded));
  }

  // What must be on disk before the acknowledgement [MQTT-3.3.1-5]: the
  // copies queued for persistent sessions and that this QoS 2 packet id was
  // delivered (one batch: all of it or none), and the retained message.
  // Acknowledged once stored here and acknowledged by every other node with
  // a matching route; nobody waits for a QoS 0 message.
  auto gate = p.qos == QoS::k0 ? nullptr : ReplyGate::make();
  storage::WriteBatch write;
  if (broker.commits) {
    put_queued(write, route, now, /*check_room=*/false);
    if (p.qos == QoS::k2 && st.session->persistent()) put_inbound_qos2(write, *st.session, p.packet_id);
  }
  auto& forwarder = broker.router.forwarder();
  uint64_t version = 0;
  if (p.retain) {
    // Submitted in the order the retained store takes them: of two
    // publishers racing on one topic, the disk keeps the one it kept.
    version = forwarder.retain(message, [&] {
      broker.retained.set(message);
      if (!broker.commits) return;
      storage::WriteBatch retained;
      put_retained(retained, *message, now);
      if (gate) {
        gate->submit(link, std::move(retained));
      } else {
        store(link, std::move(retained));
      }
    });
  }
  // Submitted before any subscriber sees the message (deliver, below).
  size_t peers = 0;  // other nodes it goes to
  if (!gate) {
    store(link, std::move(write));
    peers = forwarder.forward(message, {}, version);
  } else {
    gate->submit(link, std::move(write));
    peers = forwarder.forward(message, gate->part(), version);
    // A shared group's pick here: its copies get it from here.
    if (auto picks = broker.sessions.shared_for_copies(route); !picks.empty()) {
      broker.sessions.copy_shared(picks, gate->part());
    }
    // The session's copies learn the packet id before the PUBREC goes.
    if (p.qos == QoS::k2) {
      if (auto* replication = replication_of(link)) {
        replication->inbound_qos2(*st.session, p.packet_id, /*released=*/false, gate->part());
      }
    }
    const bool nobody = route.deliveries.empty() && peers == 0;
    gate->hold(link, ack(nobody ? ReasonCode::kNoMatchingSubscribers : ReasonCode::kSuccess));
  }

  const auto result = broker.router.deliver(route, now.steady);
  if (!result.unqueued.empty() && broker.commits) {
    storage::WriteBatch erase;
    erase_unqueued(erase, result);
    store(link, std::move(erase));
  }
  if (route.deliveries.empty() && peers == 0) broker.stats.count_drop(DropReason::kNoSubscribers);
  for (size_t r = 0; r < kDropReasons; ++r) broker.stats.count_drop(static_cast<DropReason>(r), result.dropped_by[r]);
  for (const auto& congested : result.congested) link.wait_for_room(*congested);
}

void handle_pubrel(ClientLink& link, const mqtt::Pubrel& rel) {
  Session& session = *link.state().session;
  const bool known = session.end_inbound_qos2(rel.packet_id);
  auto comp = pub_response<mqtt::Pubcomp>(rel.packet_id,
                                          known ? ReasonCode::kSuccess : ReasonCode::kPacketIdentifierNotFound);
  // Once the client has the PUBCOMP it may use the packet id again: the
  // stored id must be gone by then, or a restart would take the next
  // message under it for a retransmission.
  storage::WriteBatch write;
  if (known && session.persistent()) erase_inbound_qos2(write, session, rel.packet_id);
  if (known) {
    if (auto* replication = replication_of(link)) replication->inbound_qos2(session, rel.packet_id, true, {});
  }
  reply_after(link, std::move(comp), std::move(write));
}

}  // namespace starling::broker
