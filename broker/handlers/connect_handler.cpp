// CONNECT: identify the client, open or resume its session, answer CONNACK.
#include <algorithm>

#include "broker/cluster_link.h"
#include "broker/handlers/handlers.h"

namespace starling::broker {
namespace {

using mqtt::ProtocolVersion;
using mqtt::ReasonCode;

void refuse(ClientLink& link, ReasonCode code) {
  mqtt::Connack ack;
  ack.reason_code = code;  // mapped to a 3.1.1 return code for older clients
  link.broker().stats.count_connect(code);
  link.send(ack);
  link.close(std::nullopt, false);  // [MQTT-3.2.2-7]
}

// What the CONNECT settled, for accepting it (at once, or once the other
// nodes of a cluster answered).
struct ConnectTerms {
  std::string client_id;
  bool clean_start = false;
  bool assigned = false;  // the id is ours (the client sent none)
  bool capped = false;    // the keep alive is the server's
  uint16_t keep_alive = 0;
};

void accept_connect(ClientLink& link, const ConnectTerms& terms, bool fenced, ClusterLink::Takeover takeover);

}  // namespace

void handle_connect(ClientLink& link, const mqtt::Connect& c, const mqtt::SharedBytes& backing) {
  ClientState& st = link.state();
  BrokerContext& broker = link.broker();
  const bool v5 = c.version == ProtocolVersion::kV5;
  st.version = c.version;

  // Enhanced authentication is not offered [MQTT-4.12.0-1].
  if (c.properties.authentication_method) return refuse(link, ReasonCode::kBadAuthenticationMethod);
  const uint32_t max_clients = broker.limits.max_connections;
  if (max_clients != 0 && broker.stats.clients_connected.load(std::memory_order_relaxed) >= max_clients)
    return refuse(link, ReasonCode::kQuotaExceeded);
  if (c.will && !topic_within_limits(c.will->topic, broker.limits)) return refuse(link, ReasonCode::kTopicNameInvalid);

  bool assigned = false;
  std::string client_id(c.client_id);
  if (client_id.empty()) {
    // 3.1.1 allows an empty id only with a clean session [MQTT-3.1.3-7,8]; 3.1
    // never does.
    if (c.version == ProtocolVersion::kV31 || (c.version == ProtocolVersion::kV311 && !c.clean_start))
      return refuse(link, ReasonCode::kClientIdentifierNotValid);
    client_id = broker.sessions.assign_client_id();
    assigned = true;
  }

  // Session Expiry: MQTT 5 says it; 3.1.1 clean session 0 means forever.
  if (v5) {
    st.session_expiry = c.properties.session_expiry_interval.value_or(0);
  } else {
    st.session_expiry = c.clean_start ? 0 : UINT32_MAX;
  }
  st.client_receive_maximum = c.properties.receive_maximum.value_or(65535);
  st.client_max_packet_size = c.properties.maximum_packet_size.value_or(mqtt::kMaxPacketSize);
  st.client_topic_alias_maximum = c.properties.topic_alias_maximum.value_or(0);

  if (c.will) {
    st.will = std::make_unique<mqtt::Will>(*c.will);
    st.will_backing = backing;
    st.will_delay = c.will->properties.will_delay_interval.value_or(0);
  }

  // Keep alive: a v5 client asking for more than the maximum (or for none) is
  // told the Server Keep Alive it must use [MQTT-3.2.2-21].
  uint16_t keep_alive = c.keep_alive;
  // 3.1/3.1.1 cannot be told another keep alive: a client asking for more than
  // the maximum is refused, as Mosquitto does, rather than cut off later.
  if (!v5 && keep_alive > broker.limits.max_keepalive) return refuse(link, ReasonCode::kClientIdentifierNotValid);
  const bool capped = v5 && (keep_alive == 0 || keep_alive > broker.limits.max_keepalive) &&
                      broker.limits.max_keepalive != 65535;
  if (capped) keep_alive = broker.limits.max_keepalive;
  st.keep_alive = keep_alive;

  ConnectTerms terms{std::move(client_id), c.clean_start, assigned, capped, keep_alive};
  // One live connection per client id in the cluster: another node's
  // connection of this client closes, and its session comes here. The
  // connection handles nothing else until the other nodes answered.
  if (broker.cluster != nullptr && broker.cluster->clustered() && !assigned) {
    auto resume = link.suspend();
    const std::string id = terms.client_id;
    broker.cluster->take_session(
        id, c.clean_start, [resume = std::move(resume), terms = std::move(terms)](ClusterLink::Takeover takeover) {
          auto shared = std::make_shared<ClusterLink::Takeover>(std::move(takeover));
          resume([terms, shared](ClientLink& l) { accept_connect(l, terms, true, std::move(*shared)); });
        });
    return;
  }
  accept_connect(link, terms, false, {});
}

namespace {

void accept_connect(ClientLink& link, const ConnectTerms& terms, bool fenced, ClusterLink::Takeover takeover) {
  ClientState& st = link.state();
  BrokerContext& broker = link.broker();
  const bool v5 = st.version == ProtocolVersion::kV5;
  const std::string& client_id = terms.client_id;
  // A newer CONNECT of this client on another node wins; this client may
  // try again.
  if (takeover.refused) return refuse(link, ReasonCode::kServerBusy);
  std::optional<HandedSession>& handed = takeover.handed;
  const uint64_t ticket = takeover.ticket;

  // A session of the client here and one handed over: two copies, one left
  // behind by a node that was down when the client moved on. The one a
  // CONNECT opened last is the client's; an older one here is replaced.
  bool replace = false;
  if (handed && handed->resumed) {
    const auto here = broker.sessions.find(client_id);
    replace = here && handed->connect_epoch > here->connect_epoch();
  }
  auto opened = broker.sessions.open(client_id, terms.clean_start || replace, st.session_expiry, link.listener());
  if (fenced) opened.session->set_connect_epoch(ticket);
  st.session = opened.session;
  // Copied with the session (record_session, below): the node that adopts
  // it should this one die publishes it.
  opened.session->set_copied_will(st.will_record(Clock::now()));
  storage::WriteBatch adopted;
  bool routes_added = false;
  // The other node holds the session until its routes here are known (or,
  // when a session of the client was here already, just until it is told).
  const bool release = handed && handed->held && !takeover.held_by.empty();
  size_t handed_queued = 0;
  if (handed && handed->resumed && !opened.present) {
    routes_added = !handed->subscriptions.empty();
    handed_queued = broker.sessions.adopt(opened.session, std::move(*handed), adopted);
    opened.present = true;
  } else if (release) {
    handed_queued = opened.session->queued_count();
  }
  // A copy of the session here (this node kept one for the old owner) goes;
  // what it has that the session lacks comes along.
  if (const size_t absorbed = broker.sessions.absorb_replica(opened.session, terms.clean_start, adopted)) {
    broker.log.info("client {}: {} messages from the copy of its session here that it lacked", client_id, absorbed);
  }
  if (fenced && !broker.cluster->connected(client_id, ticket)) {
    // A newer CONNECT elsewhere came in while this session opened: it ends
    // here, and the other node has what it held.
    broker.sessions.hand_over(client_id, /*clean_start=*/true);
    st.session.reset();
    return refuse(link, ReasonCode::kServerBusy);
  }
  st.connected = true;
  broker.stats.clients_connected.fetch_add(1, std::memory_order_relaxed);
  broker.stats.count_connect(ReasonCode::kSuccess);

  mqtt::Connack ack;
  ack.session_present = opened.present;  // [MQTT-3.2.2-2,3]
  if (v5) {
    if (terms.assigned) ack.properties.assigned_client_identifier = client_id;  // [MQTT-3.2.2-16]
    ack.properties.receive_maximum = broker.limits.receive_maximum;
    ack.properties.maximum_packet_size = broker.limits.max_packet_size;
    ack.properties.topic_alias_maximum = broker.limits.topic_alias_maximum;
    if (terms.capped) ack.properties.server_keep_alive = terms.keep_alive;
  }
  link.set_keep_alive(terms.keep_alive);
  broker.log.debug("client {} connected (v{}, clean {}, present {})", client_id, static_cast<int>(st.version),
                   terms.clean_start, opened.present);
  // Resumed in-flight messages go first, then what was queued [MQTT-4.4.0-1];
  // nothing before the CONNACK.
  // A persistent session's CONNACK waits for its record, will included: once
  // the client has it, a crash leaves the session, and the will goes out
  // after the restart.
  auto gate = ReplyGate::make();
  record_session(link, *gate, std::move(adopted));
  if (release) {
    // Until every node routes the session's messages here, they went to the
    // node it came from, which kept queuing them: those come next, ahead of
    // what came here directly meanwhile.
    broker.router.forwarder().when_routes_known(
        [&broker, session = opened.session, held_by = takeover.held_by, client_id, ticket, handed_queued,
         replication = replication_of(link), part = gate->part()](bool) {
          broker.cluster->release_session(
              held_by, client_id, ticket,
              [&broker, session, handed_queued, replication, part](std::vector<Delivery> tail) {
                broker.sessions.splice_released(session, std::move(tail), handed_queued,
                                                [session, replication, part](bool ok) {
                                                  // The tail goes to the session's replicas too.
                                                  if (!replication) return part(ok);
                                                  replication->recorded(session, [part, ok](bool) { part(ok); });
                                                });
              });
        });
  } else if (routes_added) {
    broker.router.forwarder().when_routes_known(gate->part());
  }
  gate->hold(link, std::move(ack), [](ClientLink& l) { l.flush_session(/*resend_inflight=*/true); });
}

}  // namespace

}  // namespace starling::broker
