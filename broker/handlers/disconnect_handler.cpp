// DISCONNECT, PINGREQ and AUTH: the small control packets.
#include "broker/handlers/handlers.h"

namespace starling::broker {

void handle_disconnect(ClientLink& link, const mqtt::Disconnect& d) {
  ClientState& st = link.state();
  if (auto expiry = d.properties.session_expiry_interval) {
    // A session created with expiry 0 cannot be given one now [MQTT-3.14.2-2].
    if (st.session_expiry == 0 && *expiry != 0) return link.close(mqtt::ReasonCode::kProtocolError, false);
    st.session_expiry = *expiry;
    st.session->set_expiry_interval(*expiry);
  }
  // 0x04 asks for the will to be published anyway [MQTT-3.14.4-3].
  link.close(std::nullopt, d.reason_code != mqtt::ReasonCode::kDisconnectWithWill);
}

void handle_pingreq(ClientLink& link) { link.send(mqtt::Pingresp{}); }

void handle_auth(ClientLink& link, const mqtt::Auth&) {
  // No authentication method was agreed at CONNECT, so AUTH is out of place
  // [MQTT-4.12.0-1].
  link.close(mqtt::ReasonCode::kProtocolError, false);
}

}  // namespace starling::broker
