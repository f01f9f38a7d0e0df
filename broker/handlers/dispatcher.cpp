#include "broker/handlers/handlers.h"

namespace starling::broker {

void dispatch(ClientLink& link, mqtt::Decoded& decoded) {
  const bool connected = link.state().connected;
  const auto type = mqtt::type_of(decoded.packet);
  if (!connected && type != mqtt::PacketType::kConnect) {
    link.close(std::nullopt, false);  // [MQTT-3.1.0-1]
    return;
  }
  std::visit(
      [&](const auto& p) {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, mqtt::Connect>) {
          if (connected) {
            link.close(mqtt::ReasonCode::kProtocolError, false);  // [MQTT-3.1.0-2]
            return;
          }
          handle_connect(link, p, decoded.backing);
        } else if constexpr (std::is_same_v<P, mqtt::Publish>) {
          handle_publish(link, p, decoded.backing);
        } else if constexpr (std::is_same_v<P, mqtt::Puback>) {
          handle_puback(link, p);
        } else if constexpr (std::is_same_v<P, mqtt::Pubrec>) {
          handle_pubrec(link, p);
        } else if constexpr (std::is_same_v<P, mqtt::Pubrel>) {
          handle_pubrel(link, p);
        } else if constexpr (std::is_same_v<P, mqtt::Pubcomp>) {
          handle_pubcomp(link, p);
        } else if constexpr (std::is_same_v<P, mqtt::Subscribe>) {
          handle_subscribe(link, p);
        } else if constexpr (std::is_same_v<P, mqtt::Unsubscribe>) {
          handle_unsubscribe(link, p);
        } else if constexpr (std::is_same_v<P, mqtt::Pingreq>) {
          handle_pingreq(link);
        } else if constexpr (std::is_same_v<P, mqtt::Disconnect>) {
          handle_disconnect(link, p);
        } else if constexpr (std::is_same_v<P, mqtt::Auth>) {
          handle_auth(link, p);
        } else {
          // CONNACK, SUBACK, UNSUBACK, PINGRESP only go server to client.
          link.close(mqtt::ReasonCode::kProtocolError, false);
        }
      },
      decoded.packet);
}

}  // namespace starling::broker
