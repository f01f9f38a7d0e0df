// SUBSCRIBE: add each subscription to the session and the router, answer
// SUBACK, then send the retained messages the subscription asks for.
#include <vector>

#include "broker/handlers/handlers.h"
#include "broker/mqtt/topic.h"

namespace starling::broker {
namespace {

// A subscription whose retained messages are to be sent once its SUBACK is.
struct RetainedWanted {
  std::string filter;
  mqtt::QoS qos;
  uint32_t subscription_id;
};

// Queues the retained messages matching `wanted` for the session, into its
// (bounded) queue; once the queue refuses, the rest are skipped. Those to a
// persistent session are stored as well, submitted before the connection
// (this one, on this thread) can send them.
void send_retained(ClientLink& link, const std::vector<RetainedWanted>& wanted) {
  Session& session = *link.state().session;
  BrokerContext& broker = link.broker();
  const ClockPair now;
  storage::WriteBatch write;
  size_t queued = 0;
  bool full = false;
  for (const RetainedWanted& w : wanted) {
    for (auto& message : broker.retained.matching(w.filter, now.steady)) {
      Delivery d;
      d.qos = std::min(message->qos, w.qos);
      d.retain = true;  // [MQTT-3.3.1-8]
      d.from_retained = true;
      if (w.subscription_id != 0) d.subscription_ids.push_back(w.subscription_id);
      d.message = std::move(message);
      const bool checked = d.qos != mqtt::QoS::k0;
      if (checked && !session.has_room(*d.message)) {
        full = true;
        break;
      }
      if (broker.commits && session.assign_sequence(d)) put_queued(write, session, d, now);
      const auto result = session.enqueue(std::move(d), now.steady, checked);
      if (result == Session::Enqueued::kQueued) {
        ++queued;
      } else if (result != Session::Enqueued::kExpired && result != Session::Enqueued::kDuplicate) {
        full = true;
        break;
      }
    }
    if (full) break;
  }
  store(link, std::move(write));
  if (queued > 0) link.flush_session(false);
}

}  // namespace

void handle_subscribe(ClientLink& link, const mqtt::Subscribe& s) {
  ClientState& st = link.state();
  BrokerContext& broker = link.broker();
  const uint32_t sub_id = s.properties.subscription_identifiers.empty() ? 0 : s.properties.subscription_identifiers[0];

  mqtt::Suback ack;
  ack.packet_id = s.packet_id;
  std::vector<RetainedWanted> retained;
  bool any_added = false;
  for (const mqtt::Subscription& sub : s.subscriptions) {
    const std::string filter(sub.filter);
    if (!topic_within_limits(filter, broker.limits)) {
      ack.reason_codes.push_back(mqtt::ReasonCode::kTopicFilterInvalid);  // 0x80 for 3.1.1
      continue;
    }
    SubscriptionEntry entry{sub.options, sub_id};
    // Recorded in the session first: Router::remove_session relies on it.
    st.session->add_subscription(filter, SubscriptionRecord{sub.options, sub_id});
    const bool added = broker.router.subscribe(st.session, filter, entry);
    any_added = any_added || added;
    ack.reason_codes.push_back(static_cast<mqtt::ReasonCode>(sub.options.qos));  // granted as asked [MQTT-3.9.3-1]

    // Retained messages: not for shared subscriptions; per
    // Retain Handling otherwise [MQTT-3.3.1-9..11].
    if (mqtt::parse_shared_filter(filter)) continue;
    const auto handling = sub.options.retain_handling;
    if (handling == mqtt::RetainHandling::kDoNotSend) continue;
    if (handling == mqtt::RetainHandling::kSendOnNewSubscribe && !added) continue;
    retained.push_back({filter, sub.options.qos, sub_id});
  }
  // The SUBACK reaches the client before the retained messages.
  ClientLink::After after;
  if (!retained.empty()) {
    after = [retained = std::move(retained)](ClientLink& l) { send_retained(l, retained); };
  }
  // Once recorded, and once every other node has the new routes: a message
  // published anywhere after the SUBACK reaches this subscriber.
  auto gate = ReplyGate::make();
  record_session(link, *gate);
  if (any_added) broker.router.forwarder().when_routes_known(gate->part());
  gate->hold(link, std::move(ack), std::move(after));
}

void handle_unsubscribe(ClientLink& link, const mqtt::Unsubscribe& u) {
  ClientState& st = link.state();
  mqtt::Unsuback ack;
  ack.packet_id = u.packet_id;
  for (std::string_view filter : u.filters) {
    const bool removed = link.broker().router.unsubscribe(st.session->id(), filter);
    st.session->remove_subscription(std::string(filter));
    ack.reason_codes.push_back(removed ? mqtt::ReasonCode::kSuccess : mqtt::ReasonCode::kNoSubscriptionExisted);
  }
  reply_when_recorded(link, std::move(ack));
}

}  // namespace starling::broker
