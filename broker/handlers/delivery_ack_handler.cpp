// PUBACK, PUBREC and PUBCOMP: the client acknowledging our QoS 1/2 deliveries.
// Each completion frees a slot of the in-flight window, so more can be sent.
#include "broker/handlers/handlers.h"
#include "storage/compactor.h"
#include "storage/records.h"

namespace starling::broker {
namespace {

// A delivery is done with: off the disk if it was stored, and a large queue
// that drained with it gives its erased range back to the disk.
void forget(ClientLink& link, const Session::Found& found, bool released) {
  if (!found) return;
  forget_stored(link, {&found.sequence, 1}, released);
  if (auto* replication = replication_of(link)) replication->completed(*link.state().session, found.id);
  if (found.drained && link.broker().compactor) {
    link.broker().compactor->request(storage::Column::queue,
                                     storage::client_prefix(link.state().session->client_id()));
  }
}

}  // namespace

void handle_puback(ClientLink& link, const mqtt::Puback& ack) {
  const auto found = link.state().session->complete(ack.packet_id, mqtt::QoS::k1);
  if (!found) return;
  forget(link, found, false);
  link.flush_session(false);
}

void handle_pubrec(ClientLink& link, const mqtt::Pubrec& rec) {
  Session& session = *link.state().session;
  if (static_cast<uint8_t>(rec.reason_code) >= 0x80) {
    // The client refused the message: the exchange ends here [MQTT-4.3.3-4].
    forget(link, session.discard(rec.packet_id), false);
    link.flush_session(false);
    return;
  }
  const auto found = session.release(rec.packet_id);
  if (!found) return link.reply(pub_response<mqtt::Pubrel>(rec.packet_id, mqtt::ReasonCode::kPacketIdentifierNotFound));
  // Released must be on disk before the client can see the PUBREL and
  // forget the packet id: from then on a restart must send the PUBREL again,
  // never the PUBLISH, which the client would take for a new message.
  storage::WriteBatch write;
  if (found.sequence != 0) put_released(write, session, found.sequence);
  auto gate = ReplyGate::make();
  gate->submit(link, std::move(write));
  // The same for the session's replicas.
  if (auto* replication = replication_of(link)) replication->released(session, found.id, rec.packet_id, gate->part());
  gate->hold(link, pub_response<mqtt::Pubrel>(rec.packet_id));
}

void handle_pubcomp(ClientLink& link, const mqtt::Pubcomp& comp) {
  const auto found = link.state().session->complete(comp.packet_id, mqtt::QoS::k2);
  if (!found) return;
  forget(link, found, true);
  link.flush_session(false);
}

}  // namespace starling::broker
