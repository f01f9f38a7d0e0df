#include "broker/session/session_registry.h"

#include <algorithm>
#include <random>

#include "broker/count_down.h"
#include "broker/routing/retained_persistence.h"
#include "broker/session/session_replication.h"
#include "storage/group_commit.h"

namespace starling::broker {

SessionRegistry::SessionRegistry(Router& router, RetainedStore& retained, QueueLimits queue_limits)
    : router_(router), retained_(retained), queue_limits_(queue_limits) {}

SessionRegistry::Opened SessionRegistry::open(const std::string& client_id, bool clean_start,
                                              uint32_t expiry_interval, std::weak_ptr<SessionListener> listener) {
  std::shared_ptr<Session> old;
  std::shared_ptr<Session> fresh;
  std::shared_ptr<SessionListener> previous;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(client_id);
    if (it != sessions_.end()) {
      old = it->second;
      offline_.erase(old);  // resumed or replaced: not offline any more
    }
    // A session with expiry 0 ends with its connection, and this connection
    // replaces that one: such a session is never resumed, even when its old
    // connection's close is still on its way on another worker.
    if (!old || clean_start || old->expiry_interval() == 0) {
      const uint64_t first_sequence = commits_ != nullptr && expiry_interval > 0 ? new_first_sequence() : 0;
      fresh = std::make_shared<Session>(client_id, next_id_++, queue_limits_, first_sequence);
      sessions_[client_id] = fresh;
      // Whatever the ended session stored goes with it.
      if (old && old->persistent()) erase_stored_locked(client_id);
      fresh->set_expiry_interval(expiry_interval);
      fresh->attach(std::move(listener));
      if (old) previous = old->attach({});  // the old session is over: detach its connection
    } else {
      old->set_expiry_interval(expiry_interval);
      previous = old->attach(std::move(listener));
    }
  }
  if (previous) previous->kick(mqtt::ReasonCode::kSessionTakenOver);
  // Resumed: a connection within the will delay cancels the will [MQTT-3.1.3-9].
  if (old && !fresh) old->cancel_pending_will();
  if (fresh) {
    if (old) {
      router_.remove_session(*old);
      // The old session ends: its delayed will goes out now [MQTT-3.1.3-9].
      if (auto will = old->take_pending_will()) publish_will(*will, Clock::now());
    }
    return {fresh, false};
  }
  return {old, true};
}

void SessionRegistry::forget_unqueued(const Router::Published& published) {
  if (!commits_ || published.unqueued.empty()) return;
  storage::WriteBatch erase;
  erase_unqueued(erase, published);
  submit(std::move(erase));
}

uint64_t SessionRegistry::new_first_sequence() { return next_first_sequence_.fetch_add(kSequenceRange); }

void SessionRegistry::submit(storage::WriteBatch batch) {
  if (commits_ && !batch.empty()) commits_->submit(std::move(batch), nullptr);
}

void SessionRegistry::after_written(std::function<void(bool ok)> done) {
  if (!commits_) return done(true);
  // Commits go in submission order: an empty batch is written after
  // everything before it.
  commits_->submit(storage::WriteBatch{}, [done = std::move(done)](const storage::Status& s) { done(s.ok()); });
}

void SessionRegistry::erase_stored_locked(std::string_view client_id) {
  storage::WriteBatch erase;
  erase_client(erase, client_id);
  submit(std::move(erase));
}

void SessionRegistry::write_session(const std::shared_ptr<Session>& session, const WillRecord* will,
                                    storage::WriteBatch batch, Done done) {
  {
    std::lock_guard lock(mu_);
    if (commits_ && session->persistent() && find_current_locked(*session) != sessions_.end()) {
      put_session(batch, *session, will, ClockPair{});
    }
    if (commits_ && !batch.empty()) {
      commits_->submit(std::move(batch), std::move(done));
      return;
    }
  }
  if (done) done(storage::Status{});
}

void SessionRegistry::publish_internal(const MessagePtr& message, Clock::time_point now, bool store_retained) {
  uint64_t version = 0;
  if (message->retain) {
    version = router_.forwarder().retain(message, [&] {
      retained_.set(message);
      if (!store_retained || !commits_) return;
      storage::WriteBatch batch;
      put_retained(batch, *message, ClockPair{now, std::chrono::system_clock::now()});
      submit(std::move(batch));
    });
  }
  Router::Route route = router_.route(message, Router::Policy::kBestEffort);
  if (commits_) {
    // A will or $SYS message queued for a persistent session is stored too
    // (no one waits for it).
    storage::WriteBatch batch;
    put_queued(batch, route, ClockPair{now, std::chrono::system_clock::now()}, /*check_room=*/true);
    submit(std::move(batch));
  }
  const auto result = router_.deliver(route, now, Router::Policy::kBestEffort);
  forget_unqueued(result);
  if (!message->from_peer) router_.forwarder().forward(message, {}, version);
}

SessionRegistry::Picks SessionRegistry::shared_for_copies(const Router::Route& route) const {
  Picks picks;
  if (replication_ == nullptr) return picks;
  for (const auto& [session, d] : route.deliveries) {
    if (d.shared && d.qos != mqtt::QoS::k0 && session->expiry_interval() > 0) picks.emplace_back(session.shared(), d);
  }
  return picks;
}

void SessionRegistry::copy_shared(const Picks& picks, std::function<void(bool ok)> done) {
  if (picks.empty() || replication_ == nullptr) return done(true);
  auto each = count_down(picks.size(), std::move(done));
  for (const auto& [session, d] : picks) replication_->queued(*session, d, each);
}

void SessionRegistry::deliver_forwarded(const MessagePtr& message, const std::vector<std::string>& shared_groups,
                                        std::function<void(bool ok)> done) {
  const ClockPair now;
  Router::Route route = router_.route(message, Router::Policy::kAllOrNone, &shared_groups);
  if (route.quota_exceeded) return done(false);
  if (auto picks = shared_for_copies(route); !picks.empty()) {
    // Acknowledged once stored here and in the copies of a shared group's pick.
    done = count_down(2, std::move(done));
    copy_shared(picks, done);
  }
  storage::WriteBatch batch;
  if (commits_) put_queued(batch, route, now, /*check_room=*/false);
  // Submitted before any subscriber sees the message, as for a client's PUBLISH.
  if (commits_ && !batch.empty()) {
    commits_->submit(std::move(batch), [done = std::move(done)](const storage::Status& s) { done(s.ok()); });
  } else {
    done(true);
  }
  const auto result = router_.deliver(route, now.steady);
  forget_unqueued(result);
}

std::optional<HandedSession> SessionRegistry::hand_over(const std::string& client_id, bool clean_start,
                                                       uint64_t key) {
  std::shared_ptr<Session> session;
  std::shared_ptr<SessionListener> connection;
  std::shared_ptr<Session> replaced;  // an older held session of the client
  bool hold = false;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) return std::nullopt;
    session = it->second;
    sessions_.erase(it);
    offline_.erase(session);
    // Its connection no longer belongs to it: closing, it ends nothing here.
    connection = session->attach({});
    if (session->persistent()) erase_stored_locked(client_id);
    hold = key != 0 && !clean_start && session->expiry_interval() != 0 && !session->subscriptions().empty();
    if (hold) {
      auto& slot = held_[client_id];
      replaced = std::exchange(slot.session, session);
      slot.key = key;
      slot.until = Clock::now() + kReleaseWait;
    }
  }
  if (connection) connection->kick(mqtt::ReasonCode::kSessionTakenOver);
  if (replaced) end_held(replaced);
  if (!hold) router_.remove_session(*session);
  // A will waiting for its delay: the session goes on elsewhere, so it is
  // cancelled, unless the session ends with this (clean start).
  if (auto will = session->take_pending_will(); will && clean_start) publish_will(*will, Clock::now());
  HandedSession handed;
  if (clean_start || session->expiry_interval() == 0) return handed;
  handed.resumed = true;
  handed.held = hold;
  handed.connect_epoch = session->connect_epoch();
  for (auto& [filter, record] : session->subscriptions()) handed.subscriptions.emplace_back(filter, record);
  // Taken out in one step: what a held session queues from now on is its tail.
  auto taken = session->take_all();
  handed.inflight = std::move(taken.inflight);
  handed.deliveries = std::move(taken.queued);
  handed.inbound_qos2 = session->inbound_qos2_snapshot();
  // The copies hear of completions a moment late: what the client completed
  // here must not come back to it from one (a second delivery at QoS 2).
  if (replication_ != nullptr) handed.completed = replication_->unconfirmed_completions(*session);
  if (taken.last_completed.known()) handed.completed.push_back(taken.last_completed);
  return handed;
}

std::optional<std::vector<Delivery>> SessionRegistry::release(const std::string& client_id, uint64_t key) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(mu_);
    auto it = held_.find(client_id);
    if (it == held_.end() || it->second.key != key) return std::nullopt;
    session = std::move(it->second.session);
    held_.erase(it);
  }
  return end_held(session);
}

size_t SessionRegistry::held_count(Clock::time_point now) const {
  std::lock_guard lock(mu_);
  // A draining node sweeps no more: one given up on is not waited for.
  return static_cast<size_t>(std::count_if(held_.begin(), held_.end(), [&](const auto& e) { return e.second.until > now; }));
}

std::vector<std::pair<std::string, uint64_t>> SessionRegistry::offline_epochs(bool online_too) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, uint64_t>> out;
  if (online_too) {
    for (const auto& [client_id, session] : sessions_) {
      if (session->expiry_interval() > 0) out.emplace_back(client_id, session->connect_epoch());
    }
    return out;
  }
  for (const auto& session : offline_) {
    if (session->persistent()) out.emplace_back(session->client_id(), session->connect_epoch());
  }
  return out;
}

std::optional<uint64_t> SessionRegistry::connect_epoch_of(const std::string& client_id) const {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) return std::nullopt;
  return it->second->connect_epoch();
}

bool SessionRegistry::drop_stale(const std::string& client_id, uint64_t epoch, bool online_too) {
  std::shared_ptr<Session> session;
  std::shared_ptr<SessionListener> connection;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end() || it->second->connect_epoch() != epoch) return false;
    if (it->second->online() && !online_too) return false;
    session = it->second;
    sessions_.erase(it);
    offline_.erase(session);
    // Closing, the connection ends nothing here any more.
    connection = session->attach({});
    if (session->persistent()) erase_stored_locked(client_id);
  }
  if (connection) connection->kick(mqtt::ReasonCode::kSessionTakenOver);
  router_.remove_session(*session);
  session->take_pending_will();  // not published: the client lives on elsewhere
  return true;
}

std::shared_ptr<Session> SessionRegistry::unroute_held(const std::string& client_id, uint64_t key) {
  std::shared_ptr<Session> session;
  {
    std::lock_guard lock(mu_);
    auto it = held_.find(client_id);
    if (it == held_.end() || it->second.key != key) return nullptr;
    session = it->second.session;
  }
  router_.remove_session(*session);
  return session;
}

std::vector<Delivery> SessionRegistry::end_held(const std::shared_ptr<Session>& session) {
  router_.remove_session(*session);
  // Nothing is queued for it after this (the router no longer has it).
  auto taken = session->take_all();
  std::vector<Delivery> tail;
  tail.reserve(taken.inflight.size() + taken.queued.size());
  for (auto& in : taken.inflight) tail.push_back(std::move(in.delivery));
  for (auto& d : taken.queued) tail.push_back(std::move(d));
  storage::WriteBatch erase;
  for (auto& d : tail) {
    if (d.sequence != 0) erase_queued(erase, *session, d.sequence);
    d.sequence = 0;
  }
  submit(std::move(erase));
  return tail;
}

size_t SessionRegistry::adopt(const std::shared_ptr<Session>& session, HandedSession handed,
                              storage::WriteBatch& batch) {
  const ClockPair now;
  // A copy of a handed message that comes here later by another way (a
  // forward sent again, a copy sent back) is not queued twice.
  std::vector<MessageId> ids;
  ids.reserve(handed.inflight.size() + handed.deliveries.size());
  for (const auto& in : handed.inflight) ids.push_back(in.delivery.message->id);
  for (const auto& d : handed.deliveries) ids.push_back(d.message->id);
  // Nor one the client completed there, from a copy that has not heard yet,
  // or from a late forward to this node's copy (which heard already).
  ids.insert(ids.end(), handed.completed.begin(), handed.completed.end());
  std::shared_ptr<Session> copy;
  {
    std::lock_guard lock(mu_);
    if (auto it = replicas_.find(session->client_id()); it != replicas_.end()) copy = it->second.session;
  }
  if (copy) {
    const auto known = copy->done_ids();
    ids.insert(ids.end(), known.begin(), known.end());
  }
  session->remember_ids(ids, now.steady);
  for (auto& in : handed.inflight) {
    Delivery& d = in.delivery;
    d.sequence = 0;
    d.dup = true;
    if (commits_ && session->assign_sequence_for(d, in.packet_id)) {
      put_queued(batch, *session, d, now);
      if (in.released) put_released(batch, *session, d.sequence);
    }
    session->restore_inflight(std::move(d), in.packet_id, in.released);
  }
  for (auto& d : handed.deliveries) {
    d.sequence = 0;
    if (commits_ && session->assign_sequence(d)) put_queued(batch, *session, d, now);
    session->restore_queued(std::move(d));
  }
  for (uint16_t id : handed.inbound_qos2) {
    session->restore_inbound_qos2(id);
    if (commits_ && session->persistent()) put_inbound_qos2(batch, *session, id);
  }
  const size_t queued = session->queued_count();
  // Subscribed last: what matches from now on queues behind what came.
  for (const auto& [filter, record] : handed.subscriptions) {
    // Recorded in the session first: Router::remove_session relies on it.
    session->add_subscription(filter, record);
    router_.subscribe(session, filter, SubscriptionEntry{record.options, record.subscription_id});
  }
  return queued;
}

void SessionRegistry::splice_released(const std::shared_ptr<Session>& session, std::vector<Delivery> tail,
                                      size_t handed, std::function<void(bool ok)> done) {
  if (tail.empty()) return done(true);
  auto spliced = session->splice_tail(std::move(tail), handed, Clock::now());
  if (!commits_) return done(true);
  storage::WriteBatch batch;
  const ClockPair now;
  for (const Delivery& d : spliced.stored) put_queued(batch, *session, d, now);
  for (uint64_t sequence : spliced.forget) erase_queued(batch, *session, sequence);
  if (batch.empty()) return done(true);
  commits_->submit(std::move(batch), [done = std::move(done)](const storage::Status& s) { done(s.ok()); });
}

void SessionRegistry::retain_forwarded(const MessagePtr& message, std::function<void(bool ok)> done) {
  retained_.set(message);
  if (!commits_) return done(true);
  storage::WriteBatch batch;
  put_retained(batch, *message, ClockPair{});
  commits_->submit(std::move(batch), [done = std::move(done)](const storage::Status& s) { done(s.ok()); });
}

void SessionRegistry::drop_copied_will(Session& session) {
  if (session.drop_copied_will_if_offline() && replication_ != nullptr && session.expiry_interval() > 0) {
    replication_->will_changed(session);
  }
}

void SessionRegistry::publish_will(const WillMessage& will, Clock::time_point now) {
  MessagePtr message = will.message;
  // A delayed will's Message Expiry runs from its publication (3.1.3.2.4),
  // not from the connection loss when it was built.
  if (message->expires_at && will.lost_at != Clock::time_point{} && now > will.lost_at) {
    auto shifted = std::make_shared<Message>(*message);
    *shifted->expires_at += now - will.lost_at;
    message = std::move(shifted);
  }
  publish_internal(message, now, /*store_retained=*/true);
}

void SessionRegistry::closed(const std::shared_ptr<Session>& session, std::optional<WillMessage> will,
                             Clock::time_point now) {
  // A will without delay goes out when the connection is lost [MQTT-3.1.2-8].
  if (will && will->due <= now) {
    publish_will(*will, now);
    will.reset();
  }
  if (!will) drop_copied_will(*session);  // a delayed one is the copies' too while it waits
  if (session->expiry_interval() == 0) {
    // The session ends now, and a delayed will with it [MQTT-3.1.3-9], unless
    // the client has connected again meanwhile (end_session leaves it then).
    if (will && !session->online()) publish_will(*will, now);
    end_session(session, now);
    return;
  }
  // A connection that attached since cancels the delayed will [MQTT-3.1.3-9].
  std::optional<WillRecord> stored_will;
  if (will) {
    stored_will = WillRecord{will->message, static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                                      will->due - will->lost_at)
                                                                      .count())};
    session->set_pending_will_if_offline(std::move(*will));
  }
  std::lock_guard lock(mu_);
  // Unless a connection resumed it or a new session replaced it meanwhile.
  if (find_current_locked(*session) == sessions_.end() || session->online()) return;
  offline_.insert(session);
  if (session->persistent() && commits_) {
    storage::WriteBatch batch;
    put_session(batch, *session, stored_will ? &*stored_will : nullptr, ClockPair{now, std::chrono::system_clock::now()});
    submit(std::move(batch));
  }
}

SessionRegistry::Map::iterator SessionRegistry::find_current_locked(const Session& session) {
  auto it = sessions_.find(session.client_id());
  return it != sessions_.end() && it->second.get() == &session ? it : sessions_.end();
}

void SessionRegistry::end_session(const std::shared_ptr<Session>& session, Clock::time_point now) {
  {
    std::lock_guard lock(mu_);
    offline_.erase(session);
    // A newer session may have replaced it under the same client id.
    auto it = find_current_locked(*session);
    if (it == sessions_.end()) return;
    if (session->online()) return;
    sessions_.erase(it);
    if (session->persistent()) erase_stored_locked(session->client_id());
  }
  if (auto will = session->take_pending_will()) publish_will(*will, now);
  router_.remove_session(*session);
}

void SessionRegistry::sweep(Clock::time_point now) {
  std::vector<std::shared_ptr<Session>> due_wills;
  std::vector<std::shared_ptr<Session>> expired;
  std::vector<std::shared_ptr<Session>> unreleased;
  {
    std::lock_guard lock(mu_);
    // The node it went to never called for the rest (gone, or the CONNECT
    // lost to a newer one): what it queued since goes with it.
    std::erase_if(held_, [&](auto& entry) {
      if (entry.second.until > now) return false;
      unreleased.push_back(std::move(entry.second.session));
      return true;
    });
    for (const auto& session : offline_) {
      if (auto due = session->pending_will_due(); due && *due <= now) due_wills.push_back(session);
      const auto since = session->disconnected_at();
      const uint32_t expiry = session->expiry_interval();
      if (since && expiry != UINT32_MAX && *since + std::chrono::seconds(expiry) <= now) expired.push_back(session);
    }
  }
  for (const auto& s : due_wills) {
    auto will = s->take_pending_will();
    if (!will) continue;
    publish_will(*will, now);
    drop_copied_will(*s);
    // Published: a restart must not send it again.
    if (s->persistent()) write_session(s, nullptr, {}, nullptr);
  }
  for (const auto& s : expired) end_session(s, now);
  for (const auto& s : unreleased) end_held(s);
}

size_t SessionRegistry::drop_expired_messages(Clock::time_point now) {
  std::vector<std::shared_ptr<Session>> offline;
  {
    std::lock_guard lock(mu_);
    offline.assign(offline_.begin(), offline_.end());
  }
  size_t dropped = 0;
  storage::WriteBatch erase;
  std::vector<uint64_t> forget;
  for (const auto& s : offline) {
    forget.clear();
    dropped += s->drop_expired(now, forget);
    for (uint64_t sequence : forget) erase_queued(erase, *s, sequence);
  }
  submit(std::move(erase));
  return dropped;
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

SessionRegistry::Census SessionRegistry::census() const {
  Census c;
  std::lock_guard lock(mu_);
  for (const auto& [id, session] : sessions_) {
    (session->online() ? c.connected : c.offline) += 1;
    c.queued += session->queued_count();
    c.inflight += session->inflight_count();
  }
  return c;
}

std::shared_ptr<Session> SessionRegistry::find(const std::string& client_id) const {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(client_id);
  return it != sessions_.end() ? it->second : nullptr;
}

std::vector<std::shared_ptr<Session>> SessionRegistry::with_prefix(std::string_view prefix) const {
  std::vector<std::shared_ptr<Session>> found;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, session] : sessions_) {
      if (std::string_view{id}.starts_with(prefix)) found.push_back(session);
    }
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a->client_id() < b->client_id(); });
  return found;
}

size_t SessionRegistry::kick_all(mqtt::ReasonCode reason) const {
  std::vector<std::shared_ptr<SessionListener>> listeners;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, session] : sessions_) {
      if (auto listener = session->listener()) listeners.push_back(std::move(listener));
    }
  }
  for (const auto& listener : listeners) listener->kick(reason);  // never under mu_
  return listeners.size();
}

}  // namespace starling::broker
