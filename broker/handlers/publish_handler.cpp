// PUBLISH from a client, and PUBREL, which completes an inbound QoS 2 PUBLISH.
#include "broker/handlers/handlers.h"
#include "broker/routing/retained_persistence.h"
#include "storage/group_commit.h"

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

  broker.stats.messages_received.fetch_add(1, std::memory_order_relaxed);
  if (p.qos == QoS::k2) {
    // Flow control: QoS 2 messages awaiting PUBREL count against our Receive
    // Maximum; QoS 1 ones are acknowledged at once [MQTT-3.3.4-9]. A
    // retransmission adds nothing and is acknowledged only [MQTT-4.3.3-9].
    const size_t limit = st.version == mqtt::ProtocolVersion::kV5 ? broker.limits.receive_maximum : SIZE_MAX;
    switch (st.session->begin_inbound_qos2(p.packet_id, limit)) {
      case Session::Inbound::kDuplicate:
        return link.acknowledge(mqtt::PacketType::kPubrec, p.packet_id, ReasonCode::kSuccess);
      case Session::Inbound::kOverLimit:
        return link.close(ReasonCode::kReceiveMaximumExceeded, false,
                          "more unacknowledged QoS 2 PUBLISH than Receive Maximum");
      case Session::Inbound::kNew: break;
    }
  }

  const auto now = Clock::now();
  auto message = make_message(*topic, p.payload, p.qos, p.retain, p.properties, st.session->id(), backing, now);
  const auto result = broker.router.publish(message, now);
  broker.stats.messages_dropped.fetch_add(result.dropped, std::memory_order_relaxed);

  if (result.quota_exceeded) {
    // Refused, not lied to: no subscriber got it. MQTT 5 says so with 0x97;
    // 3.1.1 has no way to refuse, so the connection is closed unacknowledged
    // and the client sends the message again when it reconnects
    // [MQTT-4.4.0-1].
    if (p.qos == QoS::k2) st.session->end_inbound_qos2(p.packet_id);
    if (st.version != mqtt::ProtocolVersion::kV5) {
      broker.log.debug("{}: a subscriber's queue is full; closing the 3.1.1 publisher unacknowledged", st.client_id());
      return link.close(std::nullopt, false);
    }
    return link.acknowledge(p.qos == QoS::k1 ? mqtt::PacketType::kPuback : mqtt::PacketType::kPubrec, p.packet_id,
                            ReasonCode::kQuotaExceeded);
  }
  // Stored, and on disk before it is acknowledged [MQTT-3.3.1-5]; only
  // accepted messages.
  std::optional<storage::WriteBatch> write;
  if (p.retain) {
    broker.retained.set(message);
    if (broker.commits) write = retained_write(*message, ClockPair{now, std::chrono::system_clock::now()});
  }
  for (const auto& congested : result.congested) link.wait_for_room(*congested);

  const ReasonCode code = result.deliveries == 0 ? ReasonCode::kNoMatchingSubscribers : ReasonCode::kSuccess;
  if (p.qos == QoS::k0) {
    if (write) broker.commits->submit(std::move(*write), nullptr);  // nobody waits for a QoS 0 message
    return;
  }
  link.acknowledge(p.qos == QoS::k1 ? mqtt::PacketType::kPuback : mqtt::PacketType::kPubrec, p.packet_id, code,
                   write ? &*write : nullptr);
}

void handle_pubrel(ClientLink& link, const mqtt::Pubrel& rel) {
  const bool known = link.state().session->end_inbound_qos2(rel.packet_id);
  send_pub_response<mqtt::Pubcomp>(link, rel.packet_id,
                             known ? ReasonCode::kSuccess : ReasonCode::kPacketIdentifierNotFound);
}

}  // namespace starling::broker
