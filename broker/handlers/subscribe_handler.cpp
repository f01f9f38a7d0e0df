// SUBSCRIBE: add each subscription to the session and the router, answer
// SUBACK, then send the retained messages the subscription asks for.
#include "broker/handlers/handlers.h"
#include "broker/mqtt/topic.h"

namespace starling::broker {

void handle_subscribe(ClientLink& link, const mqtt::Subscribe& s) {
  ClientState& st = link.state();
  BrokerContext& broker = link.broker();
  const uint32_t sub_id = s.properties.subscription_identifiers.empty() ? 0 : s.properties.subscription_identifiers[0];
  const auto now = Clock::now();

  mqtt::Suback ack;
  ack.packet_id = s.packet_id;
  // Retained messages go straight into the (bounded) session queue: the
  // SUBACK written below still reaches the client first, as the queue is
  // only flushed after this handler returns. Once the queue refuses, the rest
  // of this SUBSCRIBE's retained messages are skipped.
  bool queue_full = false;
  size_t retained_queued = 0;
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
    ack.reason_codes.push_back(static_cast<mqtt::ReasonCode>(sub.options.qos));  // granted as asked [MQTT-3.9.3-1]

    // Retained messages: not for shared subscriptions; per
    // Retain Handling otherwise [MQTT-3.3.1-9..11].
    if (mqtt::parse_shared_filter(filter)) continue;
    const auto handling = sub.options.retain_handling;
    if (handling == mqtt::RetainHandling::kDoNotSend) continue;
    if (handling == mqtt::RetainHandling::kSendOnNewSubscribe && !added) continue;
    if (queue_full) continue;
    for (auto& message : broker.retained.matching(filter, now)) {
      Delivery d;
      d.qos = std::min(message->qos, sub.options.qos);
      d.retain = true;  // [MQTT-3.3.1-8]
      if (sub_id != 0) d.subscription_ids.push_back(sub_id);
      d.message = std::move(message);
      const auto result = st.session->enqueue(std::move(d), now);
      if (result == Session::Enqueued::kQueued) {
        ++retained_queued;
      } else if (result != Session::Enqueued::kExpired) {
        queue_full = true;
        break;
      }
    }
  }
  link.send(ack);
  if (retained_queued > 0) link.flush_session(false);
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
  link.send(ack);
}

}  // namespace starling::broker
