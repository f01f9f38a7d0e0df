// PUBACK, PUBREC and PUBCOMP: the client acknowledging our QoS 1/2 deliveries.
// Each completion frees a slot of the in-flight window, so more can be sent.
#include "broker/handlers/handlers.h"

namespace starling::broker {

void handle_puback(ClientLink& link, const mqtt::Puback& ack) {
  if (link.state().session->complete(ack.packet_id, mqtt::QoS::k1)) link.flush_session(false);
}

void handle_pubrec(ClientLink& link, const mqtt::Pubrec& rec) {
  Session& session = *link.state().session;
  if (static_cast<uint8_t>(rec.reason_code) >= 0x80) {
    // The client refused the message: the exchange ends here [MQTT-4.3.3-4].
    session.discard(rec.packet_id);
    link.flush_session(false);
    return;
  }
  mqtt::Pubrel rel;
  rel.packet_id = rec.packet_id;
  if (!session.release(rec.packet_id)) rel.reason_code = mqtt::ReasonCode::kPacketIdentifierNotFound;
  link.send(rel);
}

void handle_pubcomp(ClientLink& link, const mqtt::Pubcomp& comp) {
  if (link.state().session->complete(comp.packet_id, mqtt::QoS::k2)) link.flush_session(false);
}

}  // namespace starling::broker
