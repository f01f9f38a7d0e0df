// One handler per inbound packet type, each in the file named for it, and the
// dispatcher that routes a decoded packet to it. Handlers run on the
// connection's worker: decode is done, they check, delegate and answer.
#pragma once

#include "broker/handlers/client_link.h"
#include "broker/mqtt/packet.h"

namespace starling::broker {

// Routes one decoded packet; enforces CONNECT first and only once.
void dispatch(ClientLink& link, mqtt::Decoded& decoded);

void handle_connect(ClientLink& link, const mqtt::Connect& connect, const mqtt::SharedBytes& backing);
void handle_publish(ClientLink& link, const mqtt::Publish& publish, const mqtt::SharedBytes& backing);
void handle_puback(ClientLink& link, const mqtt::Puback& ack);
void handle_pubrec(ClientLink& link, const mqtt::Pubrec& rec);
void handle_pubrel(ClientLink& link, const mqtt::Pubrel& rel);
void handle_pubcomp(ClientLink& link, const mqtt::Pubcomp& comp);
void handle_subscribe(ClientLink& link, const mqtt::Subscribe& subscribe);
void handle_unsubscribe(ClientLink& link, const mqtt::Unsubscribe& unsubscribe);
void handle_pingreq(ClientLink& link);
void handle_disconnect(ClientLink& link, const mqtt::Disconnect& disconnect);
void handle_auth(ClientLink& link, const mqtt::Auth& auth);

}  // namespace starling::broker
