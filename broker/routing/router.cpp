#include "broker/routing/router.h"

#include <algorithm>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "broker/mqtt/topic.h"

namespace starling::broker {
namespace {

// Whether `full` is "$share/" + name + "/" + filter.
bool shared_filter_is(std::string_view full, std::string_view name, std::string_view filter) {
  constexpr std::string_view prefix = "$share/";
  return full.size() == prefix.size() + name.size() + 1 + filter.size() && full.starts_with(prefix) &&
         full.substr(prefix.size(), name.size()) == name && full[prefix.size() + name.size()] == '/' &&
         full.substr(prefix.size() + name.size() + 1) == filter;
}

}  // namespace

bool Router::subscribe(const std::shared_ptr<Session>& session, std::string_view filter,
                       const SubscriptionEntry& entry) {
  const SubscriberId id{session->id()};
  std::unique_lock lock(mu_);
  // An ended session (replaced by a clean start, or expired) whose old
  // connection still runs a SUBSCRIBE must not come back into the tree.
  if (session->ended()) return false;
  const auto shared = mqtt::parse_shared_filter(filter);
  const bool added = shared ? tree_.subscribe(*shared, id, entry) : tree_.subscribe(filter, id, entry);
  if (added) {
    sessions_.try_emplace(session->id(), session);
    ++subscription_counts_[session->id()];
    forwarder_.subscribed(filter);
  }
  return added;
}

bool Router::unsubscribe(SessionId session, std::string_view filter) {
  std::unique_lock lock(mu_);
  return unsubscribe_locked(session, filter);
}

bool Router::unsubscribe_locked(SessionId session, std::string_view filter) {
  const SubscriberId id{session};
  const auto shared = mqtt::parse_shared_filter(filter);
  const bool removed = shared ? tree_.unsubscribe(*shared, id) : tree_.unsubscribe(filter, id);
  if (removed) forwarder_.unsubscribed(filter);
  if (removed && --subscription_counts_[session] == 0) {
    subscription_counts_.erase(session);
    sessions_.erase(session);
  }
  if (removed && shared) {
    // Cursors of groups that are gone would pile up; when they clearly
    // outnumber the subscriptions, start every group's round robin afresh.
    std::lock_guard cursors(cursor_mu_);
    if (group_cursors_.size() > 2 * tree_.size() + 64) group_cursors_.clear();
  }
  return removed;
}

void Router::remove_session(Session& session) {
  // Marked under the lock, so a SUBSCRIBE of the session either finished
  // before (and its filter, recorded in the session first, is removed here)
  // or sees the mark and adds nothing.
  std::unique_lock lock(mu_);
  session.mark_ended();
  for (const auto& [filter, record] : session.subscriptions()) unsubscribe_locked(session.id(), filter);
}

size_t Router::pick_member(const SharedGroup& group) const {
  // Round robin over members, skipping those whose session is offline. Falls
  // back to the next in turn when all are offline (the message then queues
  // for a persistent member, or is dropped at QoS 0).
  std::lock_guard lock(cursor_mu_);
  size_t& cursor = group_cursors_[static_cast<uint64_t>(group.id)];
  const size_t n = group.members.size();
  for (size_t tried = 0; tried < n; ++tried) {
    const size_t i = (cursor + tried) % n;
    auto it = sessions_.find(static_cast<SessionId>(group.members[i].id));
    if (it != sessions_.end() && it->second->online()) {
      cursor = i + 1;
      return i;
    }
  }
  return cursor++ % n;
}

Router::Published Router::publish(const MessagePtr& message, Clock::time_point now, Policy policy) {
  Route r = route(message, policy);
  auto result = deliver(r, now, policy);
  if (!message->from_peer) forwarder_.forward(message, {});  // not retained: the caller's concern
  return result;
}

Router::Route Router::route(const MessagePtr& message, Policy policy,
                            const std::vector<std::string>* only_groups) const {
  struct Collect {
    const Router& router;
    Targets& out;
    const std::vector<std::string>* only;
    void on_subscriber(SubscriberId id, const SubscriptionEntry& entry) {
      out.push_back({static_cast<SessionId>(id), entry});
    }
    void on_shared_group(const SharedGroup& group) {
      if (only && std::none_of(only->begin(), only->end(), [&](const std::string& g) {
            return shared_filter_is(g, group.name, group.filter);
          })) {
        return;
      }
      const Subscriber& member = group.members[router.pick_member(group)];
      // No Local does not apply to shared subscriptions [MQTT-3.8.3-4].
      SubscriptionEntry entry = member.entry;
      entry.options.no_local = false;
      out.push_back({static_cast<SessionId>(member.id), entry, /*shared=*/true});
    }
  };
  // The targets that make one delivery, from i (targets sorted by session,
  // plain ones first): a session's plain subscriptions together
  // [MQTT-3.3.4-2], each shared group's pick alone. A client with a shared and
  // a plain subscription that both match gets a copy for each (MQTT 5 4.8.2).
  const auto delivery_end = [](const Targets& targets, size_t i) {
    if (targets[i].shared) return i + 1;
    size_t end = i + 1;
    while (end < targets.size() && targets[end].session == targets[i].session && !targets[end].shared) ++end;
    return end;
  };

  // Most messages go to a few sessions: no allocation for those.
  Targets targets;
  boost::container::small_vector<RoutedSession, 4> sessions;
  {
    std::shared_lock lock(mu_);
    Collect collect{*this, targets, only_groups};
    tree_.match(message->topic, collect);
    // A session with overlapping subscriptions gets the message once, at the
    // highest QoS, with every subscription identifier [MQTT-3.3.4-3..5].
    std::sort(targets.begin(), targets.end(), [](const Target& a, const Target& b) {
      return a.session != b.session ? a.session < b.session : a.shared < b.shared;
    });
    sessions.reserve(targets.size());
    for (size_t i = 0; i < targets.size(); i = delivery_end(targets, i)) {
      // Counted under the lock: a session removed after it still gets this.
      auto it = sessions_.find(targets[i].session);
      sessions.emplace_back(it != sessions_.end() ? it->second : nullptr);
    }
  }

  // Merge each session's matches into one delivery (a shared group's apart).
  Route route;
  auto& deliveries = route.deliveries;
  deliveries.reserve(sessions.size());
  size_t s = 0;
  for (size_t i = 0; i < targets.size(); ++s) {
    const SessionId id = targets[i].session;
    Delivery d;
    d.message = message;
    d.shared = targets[i].shared;
    bool any = false;
    for (const size_t end = delivery_end(targets, i); i < end; ++i) {
      const SubscriptionEntry& e = targets[i].entry;
      if (e.options.no_local && id == message->publisher) continue;  // [MQTT-3.8.3-3]
      any = true;
      d.qos = std::max(d.qos, std::min(message->qos, e.options.qos));  // [MQTT-3.8.4-8]
      d.retain = d.retain || (e.options.retain_as_published && message->retain);  // [MQTT-3.3.1-12,13]
      if (e.subscription_id != 0) d.subscription_ids.push_back(e.subscription_id);
    }
    // A session that just moved here may have had this message with its tail.
    if (any && sessions[s] && !sessions[s]->already_has(*message))
      deliveries.emplace_back(std::move(sessions[s]), std::move(d));
  }

  // A QoS 1/2 message is delivered to all its subscribers or to none: when one
  // subscriber's queue is full the publisher is refused, so that an
  // acknowledgement never covers a message some subscriber lost (DESIGN.md).
  for (const auto& [session, d] : deliveries) {
    if (policy != Policy::kAllOrNone) break;
    if (d.qos != mqtt::QoS::k0 && !session->has_room(*message)) {
      route.quota_exceeded = true;
      break;
    }
  }
  return route;
}

Router::Published Router::deliver(Route& route, Clock::time_point now, Policy policy) {
  Published result;
  if (route.quota_exceeded) {
    result.quota_exceeded = true;
    result.dropped_by[static_cast<size_t>(DropReason::kQueueFull)] = route.deliveries.size();
    return result;
  }
  const auto drop = [&result](DropReason reason) { ++result.dropped_by[static_cast<size_t>(reason)]; };
  for (auto& [session, d] : route.deliveries) {
    // Room was checked for every QoS 1/2 delivery of a client's PUBLISH, and
    // for every stored one (put_queued's caller).
    const bool checked = (policy == Policy::kAllOrNone && d.qos != mqtt::QoS::k0) || d.sequence != 0;
    const uint64_t sequence = d.sequence;
    const auto enqueued = session->enqueue(std::move(d), now, checked);
    session.ended();
    if (sequence != 0 && enqueued != Session::Enqueued::kQueued) result.unqueued.emplace_back(session.shared(), sequence);
    switch (enqueued) {
      case Session::Enqueued::kQueued: ++result.deliveries; break;
      case Session::Enqueued::kQueueFull: drop(DropReason::kQueueFull); break;  // best effort only
      case Session::Enqueued::kOfflineQos0: drop(DropReason::kOffline); break;
      case Session::Enqueued::kDroppedQos0: drop(DropReason::kSlowConsumer); break;
      case Session::Enqueued::kExpired: drop(DropReason::kExpired); break;
      case Session::Enqueued::kDuplicate: break;  // the session has it
    }
    if (session->congested()) result.congested.push_back(session.shared());
  }
  return result;
}

size_t Router::subscription_count() const {
  std::shared_lock lock(mu_);
  return tree_.size();
}

size_t Router::shared_group_count() const {
  std::shared_lock lock(mu_);
  return tree_.group_count();
}

std::vector<std::shared_ptr<Session>> Router::sessions_matching(std::string_view topic) const {
  struct Ids {
    std::vector<SessionId> ids;
    void on_subscriber(SubscriberId id, const SubscriptionEntry&) { ids.push_back(static_cast<SessionId>(id)); }
    void on_shared_group(const SharedGroup& group) {
      for (const Subscriber& m : group.members) ids.push_back(static_cast<SessionId>(m.id));
    }
  } found;
  std::vector<std::shared_ptr<Session>> sessions;
  std::shared_lock lock(mu_);
  tree_.match(topic, found);
  std::sort(found.ids.begin(), found.ids.end());
  found.ids.erase(std::unique(found.ids.begin(), found.ids.end()), found.ids.end());
  for (SessionId id : found.ids) {
    if (auto it = sessions_.find(id); it != sessions_.end()) sessions.push_back(it->second);
  }
  return sessions;
}

}  // namespace starling::broker
