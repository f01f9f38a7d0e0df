// This node's copies (replicas) of sessions that other nodes own, and the
// promotion of a copy to a session of this node's when its owner is gone.
#include <thread>
#include <unordered_set>

#include "broker/session/session_records.h"
#include "broker/session/session_registry.h"
#include "broker/session/session_replication.h"

namespace starling::broker {

std::shared_ptr<Session> SessionRegistry::new_copy_locked(const std::string& client_id) {
  return std::make_shared<Session>(client_id, next_id_++, queue_limits_, commits_ ? new_first_sequence() : 0,
                                   /*copy=*/true);
}

size_t SessionRegistry::merge_stored(Session& session, std::vector<Delivery> deliveries, storage::WriteBatch& batch) {
  std::vector<Delivery> stored;
  const ClockPair now;
  const size_t merged = session.merge_queued(std::move(deliveries), now.steady, &stored);
  for (const Delivery& d : stored) put_queued(batch, session, d, now);
  return merged;
}

void SessionRegistry::erase_copy_locked(const std::string& client_id) {
  if (!commits_) return;
  storage::WriteBatch erase;
  erase_copy(erase, client_id);
  submit(std::move(erase));
}

SessionRegistry::Replica* SessionRegistry::replica_locked(const std::string& client_id, const std::string& owner) {
  auto it = replicas_.find(client_id);
  return it != replicas_.end() && it->second.owner == owner ? &it->second : nullptr;
}

std::shared_ptr<Session> SessionRegistry::take_replica_locked(const std::string& client_id) {
  auto it = replicas_.find(client_id);
  if (it == replicas_.end()) return nullptr;
  auto copy = std::move(it->second.session);
  replicas_.erase(it);
  erase_copy_locked(client_id);
  return copy;
}

SessionRegistry::ReplicaOpened SessionRegistry::replica_open(const std::string& client_id, ReplicaTerms terms) {
  ReplicaOpened out;
  std::shared_ptr<Session> stale;
  std::shared_ptr<Session> copy;
  std::vector<std::pair<std::string, SubscriptionRecord>> add;
  std::vector<std::string> remove;
  std::string owner;
  uint64_t generation = 0;
  std::vector<std::string> replicas;
  std::optional<WillRecord> will;
  {
    std::lock_guard lock(mu_);
    // What was read back from disk is the owner's to replace.
    if (dormant_.erase(client_id) > 0) erase_copy_locked(client_id);
    if (auto it = sessions_.find(client_id); it != sessions_.end()) {
      // A copy of this node's own, left from before it was down, and the
      // client has moved on: that one is stale.
      if (it->second->online() || it->second->connect_epoch() >= terms.connect_epoch) return {true};
      stale = it->second;
      sessions_.erase(it);
      offline_.erase(stale);
      if (stale->persistent()) erase_stored_locked(client_id);
    }
    auto [it, fresh] = replicas_.try_emplace(client_id);
    Replica& r = it->second;
    if (!fresh && r.owner != terms.owner && r.session->connect_epoch() > terms.connect_epoch) return {true};
    if (fresh) r.session = new_copy_locked(client_id);
    out.owner_changed = !fresh && (r.owner != terms.owner || r.generation != terms.generation);
    r.owner = std::move(terms.owner);
    r.unconfirmed = false;
    r.generation = terms.generation;
    r.replicas = std::move(terms.replicas);
    r.will = std::move(terms.will);
    owner = r.owner;
    generation = r.generation;
    replicas = r.replicas;
    will = r.will;
    copy = r.session;
    copy->set_expiry_interval(terms.expiry_interval);
    copy->set_connect_epoch(terms.connect_epoch);
    const auto current = copy->subscriptions();
    std::unordered_set<std::string> wanted;
    for (auto& [filter, record] : terms.subscriptions) {
      wanted.insert(filter);
      add.emplace_back(std::move(filter), record);
    }
    for (const auto& [filter, record] : current) {
      if (!wanted.contains(filter)) remove.push_back(filter);
    }
  }
  if (stale) {
    router_.remove_session(*stale);
    stale->take_pending_will();  // not published: the client lives on elsewhere
  }
  for (const auto& [filter, record] : add) {
    // A shared group delivers a message once, on one node of its members':
    // a copy must not be that member. It keeps the subscription for when it
    // becomes the session, and gets the group's messages from its owner
    // (replica_queued).
    if (filter.starts_with("$share/")) {
      copy->add_subscription(filter, record);
      continue;
    }
    out.routes_added = copy->add_subscription(filter, record) || out.routes_added;
    router_.subscribe(copy, filter, SubscriptionEntry{record.options, record.subscription_id});
  }
  for (const auto& filter : remove) {
    copy->remove_subscription(filter);
    router_.unsubscribe(copy->id(), filter);
  }
  if (commits_) {
    storage::WriteBatch batch;
    put_copy(batch, *copy, owner, generation, replicas, will ? &*will : nullptr, ClockPair{});
    submit(std::move(batch));
  }
  return out;
}

void SessionRegistry::replica_fill(const std::string& client_id, const std::string& owner,
                                   std::vector<Inflight> inflight, std::vector<Delivery> deliveries,
                                   std::span<const uint16_t> inbound_qos2) {
  std::shared_ptr<Session> copy;
  std::vector<Delivery> all;
  all.reserve(inflight.size() + deliveries.size());
  storage::WriteBatch batch;
  {
    std::lock_guard lock(mu_);
    Replica* r = replica_locked(client_id, owner);
    if (r == nullptr) return;
    copy = r->session;
    for (auto& in : inflight) {
      const MessageId& id = in.delivery.message->id;
      if (in.released && id.known()) {
        r->released[id] = in.packet_id;
        if (commits_) put_copy_inflight(batch, *copy, in.packet_id, id, /*released=*/true);
      }
      in.delivery.dup = true;
      all.push_back(std::move(in.delivery));
    }
    if (commits_) {
      for (uint16_t packet_id : r->inbound_qos2) erase_inbound_qos2(batch, *copy, packet_id);
    }
    r->inbound_qos2.assign(inbound_qos2.begin(), inbound_qos2.end());
    std::sort(r->inbound_qos2.begin(), r->inbound_qos2.end());
    if (commits_) {
      for (uint16_t packet_id : r->inbound_qos2) put_inbound_qos2(batch, *copy, packet_id);
    }
  }
  for (auto& d : deliveries) all.push_back(std::move(d));
  merge_stored(*copy, std::move(all), batch);
  submit(std::move(batch));
}

void SessionRegistry::replica_queued(const std::string& client_id, const std::string& owner,
                                     std::vector<Delivery> deliveries) {
  std::shared_ptr<Session> copy;
  {
    std::lock_guard lock(mu_);
    Replica* r = replica_locked(client_id, owner);
    if (r == nullptr) return;
    copy = r->session;
  }
  storage::WriteBatch batch;
  merge_stored(*copy, std::move(deliveries), batch);
  submit(std::move(batch));
}

void SessionRegistry::replica_inbound(const std::string& client_id, const std::string& owner,
                                      std::span<const uint32_t> changes) {
  std::lock_guard lock(mu_);
  Replica* r = replica_locked(client_id, owner);
  if (r == nullptr) return;
  storage::WriteBatch batch;
  auto& ids = r->inbound_qos2;
  for (uint32_t change : changes) {
    const auto packet_id = static_cast<uint16_t>(change & 0xffff);
    if (packet_id == 0) continue;
    auto at = std::lower_bound(ids.begin(), ids.end(), packet_id);
    const bool present = at != ids.end() && *at == packet_id;
    if (change & 0x10000) {
      if (!present) continue;
      ids.erase(at);
      if (commits_) erase_inbound_qos2(batch, *r->session, packet_id);
    } else if (!present) {
      ids.insert(at, packet_id);
      if (commits_) put_inbound_qos2(batch, *r->session, packet_id);
    }
  }
  submit(std::move(batch));
}

void SessionRegistry::forget_packets_locked(Replica& r, std::span<const MessageId> ids, storage::WriteBatch& batch) {
  for (const MessageId& id : ids) {
    for (auto* packets : {&r.released, &r.sent}) {
      auto it = packets->find(id);
      if (it == packets->end()) continue;
      if (commits_) erase_copy_inflight(batch, *r.session, it->second);
      packets->erase(it);
    }
  }
}

void SessionRegistry::replica_forget(const std::string& client_id, const std::string& owner,
                                     std::span<const MessageId> ids) {
  std::shared_ptr<Session> copy;
  storage::WriteBatch batch;
  {
    std::lock_guard lock(mu_);
    Replica* r = replica_locked(client_id, owner);
    if (r == nullptr) return;
    copy = r->session;
    forget_packets_locked(*r, ids, batch);
  }
  std::vector<uint64_t> forget;
  copy->forget_ids(ids, Clock::now(), &forget);
  for (uint64_t sequence : forget) erase_queued(batch, *copy, sequence);
  submit(std::move(batch));
}

void SessionRegistry::replica_released(const std::string& client_id, const std::string& owner, const MessageId& id,
                                       uint16_t packet_id) {
  set_copy_packet(client_id, owner, id, packet_id, /*released=*/true);
}

void SessionRegistry::replica_sent(const std::string& client_id, const std::string& owner, const MessageId& id,
                                   uint16_t packet_id) {
  set_copy_packet(client_id, owner, id, packet_id, /*released=*/false);
}

void SessionRegistry::set_copy_packet(const std::string& client_id, const std::string& owner, const MessageId& id,
                                      uint16_t packet_id, bool released) {
  std::lock_guard lock(mu_);
  Replica* r = replica_locked(client_id, owner);
  if (r == nullptr || !id.known()) return;
  (released ? r->released : r->sent)[id] = packet_id;
  if (!commits_) return;
  storage::WriteBatch batch;
  put_copy_inflight(batch, *r->session, packet_id, id, released);
  submit(std::move(batch));
}

void SessionRegistry::replica_will(const std::string& client_id, const std::string& owner,
                                   std::optional<WillRecord> will) {
  std::lock_guard lock(mu_);
  Replica* r = replica_locked(client_id, owner);
  if (r == nullptr) return;
  r->will = std::move(will);
  if (!commits_) return;
  // On disk too: a copy read back after a restart may still become the
  // session of a client whose node died with its connection.
  storage::WriteBatch batch;
  put_copy(batch, *r->session, r->owner, r->generation, r->replicas, r->will ? &*r->will : nullptr, ClockPair{});
  submit(std::move(batch));
}

void SessionRegistry::replica_drop(const std::string& client_id, const std::string& owner) {
  std::shared_ptr<Session> copy;
  {
    std::lock_guard lock(mu_);
    if (replica_locked(client_id, owner) == nullptr) return;
    copy = take_replica_locked(client_id);
  }
  router_.remove_session(*copy);
}

void SessionRegistry::unconfirm_replicas(const std::string& owner) {
  std::lock_guard lock(mu_);
  for (auto& [client_id, r] : replicas_) {
    if (r.owner == owner) r.unconfirmed = true;
  }
}

size_t SessionRegistry::drop_unconfirmed_replicas(const std::string& owner) {
  std::vector<std::shared_ptr<Session>> gone;
  {
    std::lock_guard lock(mu_);
    for (auto it = replicas_.begin(); it != replicas_.end();) {
      if (it->second.owner == owner && it->second.unconfirmed) {
        gone.push_back(std::move(it->second.session));
        erase_copy_locked(it->first);
        it = replicas_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& copy : gone) router_.remove_session(*copy);
  return gone.size();
}

std::optional<SessionRegistry::ReplicaOf> SessionRegistry::replica_of(const std::string& client_id) const {
  std::lock_guard lock(mu_);
  auto it = replicas_.find(client_id);
  if (it == replicas_.end()) return std::nullopt;
  return ReplicaOf{it->second.owner, it->second.replicas, it->second.opened};
}

std::vector<std::pair<std::string, SessionRegistry::ReplicaOf>> SessionRegistry::replicas() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, ReplicaOf>> out;
  out.reserve(replicas_.size());
  for (const auto& [client_id, r] : replicas_) out.emplace_back(client_id, ReplicaOf{r.owner, r.replicas, r.opened});
  return out;
}

size_t SessionRegistry::replica_count() const {
  std::lock_guard lock(mu_);
  return replicas_.size();
}

namespace {

// A copy's deliveries without those its client released (they go again as
// PUBREL from whoever has them in flight, never as PUBLISH).
std::vector<Delivery> unreleased(std::vector<Delivery> queued,
                                 const std::unordered_map<MessageId, uint16_t, MessageIdHash>& released) {
  std::erase_if(queued, [&](const Delivery& d) { return released.contains(d.message->id); });
  return queued;
}

}  // namespace

size_t SessionRegistry::absorb_replica(const std::shared_ptr<Session>& session, bool discard,
                                       storage::WriteBatch& batch) {
  std::shared_ptr<Session> copy;
  std::unordered_map<MessageId, uint16_t, MessageIdHash> released;
  std::vector<uint16_t> inbound_qos2;
  {
    std::lock_guard lock(mu_);
    // A copy read back from disk is older than the session opened here.
    if (dormant_.erase(session->client_id()) > 0) erase_copy_locked(session->client_id());
    auto it = replicas_.find(session->client_id());
    if (it == replicas_.end()) return 0;
    copy = std::move(it->second.session);
    released = std::move(it->second.released);
    inbound_qos2 = std::move(it->second.inbound_qos2);
    replicas_.erase(it);
  }
  if (commits_) erase_copy(batch, session->client_id());
  // What the copy was told the client completed before it arrived there
  // may still arrive: the session does not queue it either.
  if (!discard) session->remember_ids(copy->done_ids(), Clock::now());
  // The session's routes are in already: none missing in between.
  if (discard) {
    router_.remove_session(*copy);
    return 0;
  }
  unroute_settled(*copy);
  for (uint16_t packet_id : inbound_qos2) {
    if (session->begin_inbound_qos2(packet_id, SIZE_MAX) == Session::Inbound::kNew && session->persistent() &&
        commits_) {
      put_inbound_qos2(batch, *session, packet_id);
    }
  }
  return merge_stored(*session, unreleased(copy->take_all().queued, released), batch);
}

size_t SessionRegistry::merge_from_replica(const std::string& client_id, std::vector<Delivery> deliveries) {
  auto session = find(client_id);
  if (!session || deliveries.empty()) return 0;
  // Completed here, and the copy did not hear of it yet: not again.
  if (replication_ != nullptr) {
    const auto ids = replication_->unconfirmed_completions(*session);
    if (!ids.empty()) {
      const std::unordered_set<MessageId, MessageIdHash> done(ids.begin(), ids.end());
      std::erase_if(deliveries, [&](const Delivery& d) { return done.contains(d.message->id); });
    }
  }
  storage::WriteBatch batch;
  const size_t merged = merge_stored(*session, std::move(deliveries), batch);
  if (merged == 0) return 0;
  if (auto listener = session->listener()) listener->wake();
  submit(std::move(batch));
  return merged;
}

std::vector<Delivery> SessionRegistry::replica_queue(const std::string& client_id, const std::string& owner) const {
  std::shared_ptr<Session> copy;
  std::unordered_map<MessageId, uint16_t, MessageIdHash> released;
  {
    std::lock_guard lock(mu_);
    auto it = replicas_.find(client_id);
    if (it == replicas_.end() || it->second.owner != owner) return {};
    copy = it->second.session;
    released = it->second.released;
  }
  return unreleased(copy->queued_snapshot(), released);
}

std::vector<std::shared_ptr<Session>> SessionRegistry::lasting_sessions() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Session>> out;
  for (const auto& [client_id, session] : sessions_) {
    if (session->expiry_interval() > 0) out.push_back(session);
  }
  return out;
}

void SessionRegistry::unroute_settled(Session& copy) {
  router_.remove_session(copy);
  const auto deadline = Clock::now() + Session::kUnderWayWait;
  while (copy.routes_under_way() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

bool SessionRegistry::promote(const std::string& client_id, uint64_t connect_epoch) {
  std::unique_lock lock(mu_);
  return promote_locked(lock, replicas_, client_id, connect_epoch);
}

std::vector<std::pair<std::string, SessionRegistry::Dormant>> SessionRegistry::dormant_copies() const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, Dormant>> out;
  out.reserve(dormant_.size());
  for (const auto& [client_id, r] : dormant_) out.emplace_back(client_id, Dormant{r.owner, r.replicas});
  return out;
}

std::optional<SessionRegistry::Dormant> SessionRegistry::dormant_of(const std::string& client_id) const {
  std::lock_guard lock(mu_);
  auto it = dormant_.find(client_id);
  if (it == dormant_.end()) return std::nullopt;
  return Dormant{it->second.owner, it->second.replicas};
}

void SessionRegistry::drop_dormant(const std::string& client_id) {
  std::lock_guard lock(mu_);
  if (dormant_.erase(client_id) > 0) erase_copy_locked(client_id);
}

bool SessionRegistry::promote_dormant(const std::string& client_id, uint64_t connect_epoch) {
  std::unique_lock lock(mu_);
  return promote_locked(lock, dormant_, client_id, connect_epoch);
}

bool SessionRegistry::promote_locked(std::unique_lock<std::mutex>& lock,
                                     std::unordered_map<std::string, Replica>& from, const std::string& client_id,
                                     uint64_t connect_epoch) {
  std::shared_ptr<Session> copy;
  std::shared_ptr<Session> fresh;
  Replica r;
  auto it = from.find(client_id);
  if (it == from.end()) return false;
  r = std::move(it->second);
  from.erase(it);
  // Erased before the session's own records are written (same order).
  erase_copy_locked(client_id);
  copy = r.session;
  if (!sessions_.contains(client_id)) {
    const uint32_t expiry = copy->expiry_interval();
    fresh = std::make_shared<Session>(client_id, next_id_++, queue_limits_,
                                      commits_ != nullptr && expiry > 0 ? new_first_sequence() : 0);
    fresh->set_expiry_interval(expiry);
    fresh->set_connect_epoch(connect_epoch);
    sessions_[client_id] = fresh;
    offline_.insert(fresh);
  }
  lock.unlock();
  if (!fresh) {
    router_.remove_session(*copy);
    return false;
  }
  HandedSession handed;
  handed.resumed = true;
  handed.inbound_qos2 = std::move(r.inbound_qos2);
  for (auto& [filter, record] : copy->subscriptions()) handed.subscriptions.emplace_back(filter, record);
  for (auto& d : copy->take_all().queued) {
    auto released = r.released.find(d.message->id);
    auto sent = r.sent.find(d.message->id);
    if (released != r.released.end()) {
      handed.inflight.push_back(Inflight{released->second, std::move(d), /*released=*/true});
    } else if (sent != r.sent.end()) {
      // Again under the id the client may hold [MQTT-4.4.0-1].
      handed.inflight.push_back(Inflight{sent->second, std::move(d), /*released=*/false});
    } else {
      handed.deliveries.push_back(std::move(d));
    }
  }
  storage::WriteBatch batch;
  // The session subscribes before the copy unsubscribes: no moment without
  // the routes. What the copy got meanwhile follows what it had, each once.
  const size_t handed_count = adopt(fresh, std::move(handed), batch);
  unroute_settled(*copy);
  if (auto tail = copy->take_all().queued; !tail.empty()) {
    const ClockPair now;
    auto spliced = fresh->splice_tail(std::move(tail), handed_count, now.steady);
    for (const Delivery& d : spliced.stored) put_queued(batch, *fresh, d, now);
    for (uint64_t sequence : spliced.forget) erase_queued(batch, *fresh, sequence);
  }
  // The owner died with the client's connection (or with its will waiting
  // for its delay): nobody else publishes the will. Without a delay it goes
  // now; with one, unless the client connects again first [MQTT-3.1.3-9].
  std::optional<WillRecord> waiting;
  if (r.will && r.will->message) {
    auto message = std::make_shared<Message>(*r.will->message);
    message->publisher = fresh->id();  // the client's, for No Local
    const auto now = Clock::now();
    WillMessage will{std::move(message), now + std::chrono::seconds(r.will->delay_s), now};
    if (r.will->delay_s == 0) {
      publish_will(will, now);
    } else if (fresh->set_pending_will_if_offline(will)) {
      waiting = WillRecord{will.message, r.will->delay_s};
    }
  }
  write_session(fresh, waiting ? &*waiting : nullptr, std::move(batch), [](const storage::Status&) {});
  return true;
}

}  // namespace starling::broker
