#include "broker/session/session_registry.h"

#include <random>

namespace starling::broker {

SessionRegistry::SessionRegistry(Router& router, RetainedStore& retained, size_t max_queued)
    : router_(router), retained_(retained), max_queued_(max_queued) {}

SessionRegistry::Opened SessionRegistry::open(const std::string& client_id, bool clean_start,
                                              std::weak_ptr<SessionListener> listener) {
  std::shared_ptr<Session> old;
  std::shared_ptr<Session> fresh;
  std::shared_ptr<SessionListener> previous;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(client_id);
    if (it != sessions_.end()) old = it->second;
    if (!old || clean_start) {
      fresh = std::make_shared<Session>(client_id, next_id_++, max_queued_);
      sessions_[client_id] = fresh;
      fresh->attach(std::move(listener));
      if (old) previous = old->attach({});  // the old session is over: detach its connection
    } else {
      previous = old->attach(std::move(listener));
    }
  }
  if (previous) previous->kick(mqtt::ReasonCode::kSessionTakenOver);
  if (old) old->set_pending_will(std::nullopt);
  if (fresh) {
    if (old) router_.remove_session(*old);
    return {fresh, false};
  }
  return {old, true};
}

void SessionRegistry::publish_internal(const MessagePtr& message, Clock::time_point now) {
  if (message->retain) retained_.set(message);
  router_.publish(message, now);
}

void SessionRegistry::closed(const std::shared_ptr<Session>& session, std::optional<WillMessage> will,
                             Clock::time_point now) {
  if (will && will->due <= now) {
    publish_internal(will->message, now);
    will.reset();
  }
  if (session->expiry_interval() == 0) {
    if (will) publish_internal(will->message, now);  // the session ends first [MQTT-3.1.3-9]
    end_session(session, now);
    return;
  }
  if (will) session->set_pending_will(std::move(will));
}

void SessionRegistry::end_session(const std::shared_ptr<Session>& session, Clock::time_point now) {
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(session->client_id());
    // A newer session may have replaced it under the same client id.
    if (it == sessions_.end() || it->second != session) return;
    if (session->online()) return;
    sessions_.erase(it);
  }
  if (auto will = session->take_pending_will()) publish_internal(will->message, now);
  router_.remove_session(*session);
}

void SessionRegistry::sweep(Clock::time_point now) {
  std::vector<std::shared_ptr<Session>> due_wills;
  std::vector<std::shared_ptr<Session>> expired;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, session] : sessions_) {
      if (auto due = session->pending_will_due(); due && *due <= now) due_wills.push_back(session);
      const auto since = session->disconnected_at();
      const uint32_t expiry = session->expiry_interval();
      if (since && expiry != UINT32_MAX && *since + std::chrono::seconds(expiry) <= now) expired.push_back(session);
    }
  }
  for (const auto& s : due_wills) {
    if (auto will = s->take_pending_will()) publish_internal(will->message, now);
  }
  for (const auto& s : expired) end_session(s, now);
}

std::string SessionRegistry::assign_client_id() {
  // Unique on this node and unlikely to collide across nodes.
  static constexpr char kDigits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::random_device rd;
  std::mt19937_64 gen(rd());
  std::string id = "starling-";
  for (int i = 0; i < 16; ++i) id += kDigits[gen() % 36];
  return id;
}

size_t SessionRegistry::size() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

size_t SessionRegistry::online_count() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [id, session] : sessions_) n += session->online();
  return n;
}

}  // namespace starling::broker
