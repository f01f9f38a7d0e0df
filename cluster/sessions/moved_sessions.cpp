#include "cluster/sessions/moved_sessions.h"

#include <algorithm>

#include "broker/routing/topic_match.h"

namespace starling::cluster {

void MovedSessions::add(const std::string& client_id, const std::string& node,
                        std::map<std::string, broker::SubscriptionRecord> subscriptions) {
  std::lock_guard lock(mu_);
  std::erase_if(moved_, [&](const Moved& m) { return m.client_id == client_id; });
  moved_.push_back(Moved{client_id, node, std::move(subscriptions), broker::Clock::now() + kKeepFor});
  count_.store(moved_.size(), std::memory_order_relaxed);
}

void MovedSessions::forget(const std::string& client_id) {
  std::lock_guard lock(mu_);
  std::erase_if(moved_, [&](const Moved& m) { return m.client_id == client_id; });
  count_.store(moved_.size(), std::memory_order_relaxed);
}

std::vector<MovedSessions::Relay> MovedSessions::matching(const broker::MessagePtr& message, const std::string& from,
                                                          const std::vector<std::string>& delivered_to,
                                                          broker::SessionRegistry& sessions) {
  std::vector<Relay> out;
  if (message->qos == mqtt::QoS::k0 || !message->id.known()) return out;
  {
    std::lock_guard lock(mu_);
    if (moved_.empty()) return out;
    const auto now = broker::Clock::now();
    std::erase_if(moved_, [&](const Moved& m) { return m.until <= now; });
    count_.store(moved_.size(), std::memory_order_relaxed);
    for (const auto& m : moved_) {
      if (m.node == from || std::find(delivered_to.begin(), delivered_to.end(), m.node) != delivered_to.end()) {
        continue;  // it has the message, or delivered it itself
      }
      // One delivery of the session's matching subscriptions, as the router
      // makes it [MQTT-3.3.4-2..5]. A shared group's member here was the
      // publishing node's pick; that pick is not followed to another node.
      broker::Delivery d;
      bool matched = false;
      for (const auto& [filter, record] : m.subscriptions) {
        if (filter.starts_with("$share/") || !broker::topic_matches(filter, message->topic)) continue;
        matched = true;
        d.qos = std::max(d.qos, std::min(message->qos, record.options.qos));
        d.retain = d.retain || (record.options.retain_as_published && message->retain);
        if (record.subscription_id != 0) d.subscription_ids.push_back(record.subscription_id);
      }
      if (!matched || d.qos == mqtt::QoS::k0) continue;  // QoS 0: nothing to keep for it
      d.message = message;
      out.push_back(Relay{m.node, m.client_id, std::move(d)});
    }
  }
  // Back here (outside the lock: the registry takes its own): the router had it.
  std::erase_if(out, [&](const Relay& r) { return sessions.find(r.client_id) != nullptr; });
  return out;
}

}  // namespace starling::cluster
