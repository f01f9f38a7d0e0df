#include "broker/session/session.h"

#include <algorithm>
#include <utility>

#include "broker/ring_buffer.h"

namespace starling::broker {

namespace {

size_t cost(const Message& m) { return m.topic.size() + m.payload.size(); }
size_t cost(const Delivery& d) { return cost(*d.message); }

// A drained queue or window keeps a buffer this large for the next messages.
constexpr size_t kKeptRing = 64;

}  // namespace

const Session::Flow Session::kNoFlow;

Session::Session(std::string client_id, SessionId id, QueueLimits limits, uint64_t first_sequence, bool copy)
    : client_id_(std::move(client_id)),
      id_(id),
      limits_(limits),
      next_sequence_(first_sequence),
      copy_(copy) {}

bool Session::assign_sequence(Delivery& d) {
  if (!persistent() || d.qos == mqtt::QoS::k0) return false;
  d.sequence = next_sequence_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool Session::has_room(const Message& message) const {
  std::lock_guard lock(mu_);
  const Flow& f = flow_locked();
  return f.queue.size() < limits_.messages && f.queued_bytes + cost(message) <= limits_.bytes;
}

Session::Enqueued Session::enqueue(Delivery d, Clock::time_point now, bool checked) {
  if (d.message->expired(now)) return Enqueued::kExpired;
  if (already_has(*d.message)) return Enqueued::kDuplicate;
  std::shared_ptr<SessionListener> listener;
  {
    std::lock_guard lock(mu_);
    listener = listener_.lock();
    if (d.qos == mqtt::QoS::k0 && !listener) return Enqueued::kOfflineQos0;
    const Flow& current = flow_locked();
    if (!checked && (current.queue.size() >= limits_.messages || current.queued_bytes + cost(d) > limits_.bytes))
      return d.qos == mqtt::QoS::k0 ? Enqueued::kDroppedQos0 : Enqueued::kQueueFull;
    Flow& f = make_flow_locked();
    const bool was_empty = f.queue.empty();
    f.queued_bytes += cost(d);
    push_grow(f.queue, std::move(d));
    if (listener_raw_ != nullptr &&
        (f.queue.size() >= limits_.slow_down_messages || f.queued_bytes >= limits_.slow_down_bytes)) {
      congested_.store(true, std::memory_order_relaxed);
    }
    // Only the first message of a batch wakes the connection; it drains all.
    if (!was_empty) listener.reset();
  }
  if (listener) listener->wake();
  return Enqueued::kQueued;
}

std::shared_ptr<SessionListener> Session::attach(std::weak_ptr<SessionListener> listener) {
  std::lock_guard lock(mu_);
  auto previous = listener_.lock();
  listener_raw_ = listener.lock().get();
  if (flow_) {
    flow_->inflight_unsent = 0;
    for (Inflight& f : flow_->inflight) {
      f.sent = f.released;  // unreleased ones go again
      flow_->inflight_unsent += !f.sent;
    }
  }
  listener_ = std::move(listener);
  disconnected_at_.reset();
  return previous;
}

bool Session::detach(const SessionListener* listener) {
  std::vector<std::weak_ptr<SessionListener>> waiters;
  {
    std::lock_guard lock(mu_);
    if (listener_raw_ != listener) return false;
    listener_.reset();
    listener_raw_ = nullptr;
    disconnected_at_ = Clock::now();
    // QoS 0 messages are not kept for an absent client.
    if (flow_) {
      auto& queue = flow_->queue;
      queue.erase(std::remove_if(queue.begin(), queue.end(),
                                 [this](const Delivery& d) {
                                   if (d.qos != mqtt::QoS::k0) return false;
                                   flow_->queued_bytes -= cost(d);
                                   return true;
                                 }),
                  queue.end());
      release_if_drained(queue, kKeptRing);
      drop_flow_if_empty_locked();
    }
    // An offline session slows no one: its queue is bounded by the hard limits.
    waiters = relieve_locked(0, 0, /*force=*/true);
  }
  tell_room(std::move(waiters));
  return true;
}

bool Session::wait_for_room(std::weak_ptr<SessionListener> waiter) {
  std::lock_guard lock(mu_);
  if (!congested_.load(std::memory_order_relaxed)) return false;
  room_waiters_.push_back(std::move(waiter));
  return true;
}

std::vector<std::weak_ptr<SessionListener>> Session::relieve_locked(size_t messages, size_t bytes, bool force) {
  if (!congested_.load(std::memory_order_relaxed)) return {};
  const Flow& f = flow_locked();
  if (!force && (f.queue.size() > messages || f.queued_bytes > bytes)) return {};
  congested_.store(false, std::memory_order_relaxed);
  return std::exchange(room_waiters_, {});
}

void Session::tell_room(std::vector<std::weak_ptr<SessionListener>> waiters) {
  for (auto& w : waiters) {
    if (auto l = w.lock()) l->room();
  }
}

bool Session::online() const {
  std::lock_guard lock(mu_);
  return listener_raw_ != nullptr;
}

std::shared_ptr<SessionListener> Session::listener() const {
  std::lock_guard lock(mu_);
  return listener_raw_ != nullptr ? listener_.lock() : nullptr;
}

size_t Session::find_inflight_locked(uint16_t packet_id) const {
  // Acknowledgements mostly come in order: the front matches at once.
  const auto& ids = flow_locked().inflight_ids;
  const auto it = std::find(ids.begin(), ids.end(), packet_id);
  return it == ids.end() ? kNotInflight : static_cast<size_t>(it - ids.begin());
}

void Session::erase_inflight_locked(size_t i) {
  Flow& f = *flow_;  // i was found in it
  f.inflight_unsent -= !f.inflight[i].sent;
  if (i == 0) {  // in order: nothing moves
    f.inflight.pop_front();
  } else {
    f.inflight.erase(f.inflight.begin() + static_cast<std::ptrdiff_t>(i));
  }
  f.inflight_ids.erase(f.inflight_ids.begin() + static_cast<std::ptrdiff_t>(i));
  release_if_drained(f.inflight, kKeptRing);
}

uint16_t Session::next_packet_id_locked() {
  // Packet ids in use are few (bounded by the window): skip them.
  do {
    last_packet_id_ = static_cast<uint16_t>(last_packet_id_ == 65535 ? 1 : last_packet_id_ + 1);
  } while (find_inflight_locked(last_packet_id_) != kNotInflight);
  return last_packet_id_;
}

void Session::take_ready(const SessionListener* listener, size_t window, Clock::time_point now,
                         std::vector<Ready>& out, size_t& expired, std::vector<uint64_t>& forget,
                         size_t max_bytes) {
  std::vector<std::weak_ptr<SessionListener>> waiters;
  {
    std::lock_guard lock(mu_);
    if (listener == nullptr || listener != listener_raw_) return;  // a replaced connection sends nothing
    if (!flow_) return;  // nothing queued or in flight
    Flow& fl = *flow_;
    size_t unacknowledged = fl.inflight.size() - fl.inflight_unsent;
    for (size_t i = 0; i < fl.inflight.size() && fl.inflight_unsent > 0; ++i) {
      if (unacknowledged >= window) break;
      Inflight& f = fl.inflight[i];
      if (f.sent) continue;
      f.sent = true;
      --fl.inflight_unsent;
      ++unacknowledged;
      out.push_back({f.packet_id, f.delivery, /*dup=*/true});
    }
    size_t taken_bytes = 0;
    while (!fl.queue.empty() && taken_bytes < max_bytes) {
      Delivery& d = fl.queue.front();
      if (d.message->expired(now)) {
        ++expired;
        if (d.sequence != 0) forget.push_back(d.sequence);
        fl.queued_bytes -= cost(d);
        fl.queue.pop_front();
        continue;
      }
      if (d.qos != mqtt::QoS::k0) {
        if (fl.inflight.size() >= window || fl.inflight.size() >= 65535) break;  // stays queued
        uint16_t id = 0;
        if (d.sequence != 0) {
          // A stored delivery's id is fixed; in the rare case that it is still
          // in use (by a message 65535 places earlier), the queue waits.
          id = packet_id_of(d.sequence);
          if (find_inflight_locked(id) != kNotInflight) break;
        } else {
          id = next_packet_id_locked();
        }
        const bool dup = d.dup;
        push_grow(fl.inflight, Inflight{id, d, false, true});
        fl.inflight_ids.push_back(id);
        out.push_back({id, std::move(d), dup});
      } else {
        out.push_back({0, std::move(d)});
      }
      const size_t c = cost(*out.back().delivery.message);
      fl.queued_bytes -= c;
      taken_bytes += c;
      fl.queue.pop_front();
    }
    release_if_drained(fl.queue, kKeptRing);
    waiters = relieve_locked(limits_.slow_down_messages / 2, limits_.slow_down_bytes / 2, false);
  }
  tell_room(std::move(waiters));
}

size_t Session::drop_expired(Clock::time_point now, std::vector<uint64_t>& forget) {
  std::lock_guard lock(mu_);
  if (!flow_) return 0;
  auto& queue = flow_->queue;
  const size_t before = queue.size();
  queue.erase(std::remove_if(queue.begin(), queue.end(),
                             [&](const Delivery& d) {
                               if (!d.message->expired(now)) return false;
                               if (d.sequence != 0) forget.push_back(d.sequence);
                               flow_->queued_bytes -= cost(d);
                               return true;
                             }),
              queue.end());
  return before - queue.size();
}

std::vector<uint16_t> Session::released_ids() const {
  std::lock_guard lock(mu_);
  std::vector<uint16_t> out;
  for (const Inflight& f : flow_locked().inflight)
    if (f.released) out.push_back(f.packet_id);
  return out;
}

std::vector<Inflight> Session::inflight_snapshot() const {
  std::lock_guard lock(mu_);
  const auto& inflight = flow_locked().inflight;
  return {inflight.begin(), inflight.end()};
}

std::vector<Delivery> Session::queued_snapshot() const {
  std::lock_guard lock(mu_);
  const auto& queue = flow_locked().queue;
  return {queue.begin(), queue.end()};
}

Session::Taken Session::take_all() {
  Taken out;
  std::vector<std::weak_ptr<SessionListener>> waiters;
  {
    std::lock_guard lock(mu_);
    if (flow_) {
      out.inflight.assign(std::make_move_iterator(flow_->inflight.begin()),
                          std::make_move_iterator(flow_->inflight.end()));
      out.queued.assign(std::make_move_iterator(flow_->queue.begin()), std::make_move_iterator(flow_->queue.end()));
      flow_.reset();
    }
    out.last_completed = last_completed_;
    waiters = relieve_locked(0, 0, /*force=*/true);
  }
  tell_room(std::move(waiters));
  return out;
}

Session::Spliced Session::splice_tail(std::vector<Delivery> tail, size_t handed, Clock::time_point now) {
  Spliced out;
  std::unordered_set<MessageId, MessageIdHash> ids;
  for (const Delivery& d : tail) {
    if (d.message->id.known()) ids.insert(d.message->id);
  }
  std::lock_guard lock(mu_);
  Flow& f = make_flow_locked();
  handed = std::min(handed, f.queue.size());
  std::vector<Delivery> direct;
  direct.reserve(f.queue.size() - handed);
  for (auto it = f.queue.begin() + static_cast<std::ptrdiff_t>(handed); it != f.queue.end(); ++it) {
    f.queued_bytes -= cost(*it);
    direct.push_back(std::move(*it));
  }
  f.queue.erase_end(direct.size());
  const auto requeue = [&](Delivery& d) {
    d.sequence = 0;
    if (assign_sequence(d)) out.stored.push_back(d);
    f.queued_bytes += cost(d);
    push_grow(f.queue, std::move(d));
  };
  for (Delivery& d : tail) requeue(d);
  for (Delivery& d : direct) {
    if (d.sequence != 0) out.forget.push_back(d.sequence);
    if (d.message->id.known() && ids.contains(d.message->id)) {
      ++out.duplicates;
      continue;
    }
    requeue(d);
  }
  for (const MessageId& id : ids) remember_locked(id, now);
  return out;
}

void Session::remember_locked(const MessageId& id, Clock::time_point now) {
  if (!recent_) {
    recent_ = std::make_unique<RecentIds>();
    recent_->rotate_at = now + kTailMemory;
    has_recent_.store(true, std::memory_order_relaxed);
  }
  remembered_locked(id, now);  // rotates when due
  recent_->current.insert(id);
}

bool Session::remembered_locked(const MessageId& id, Clock::time_point now) {
  if (!recent_) return false;
  if (now >= recent_->rotate_at) {
    recent_->previous = std::move(recent_->current);
    recent_->current.clear();
    recent_->rotate_at = now + kTailMemory;
    if (recent_->previous.empty()) {
      recent_.reset();
      has_recent_.store(false, std::memory_order_relaxed);
      return false;
    }
  }
  return recent_->current.contains(id) || recent_->previous.contains(id);
}

bool Session::already_has(const Message& message) {
  if (!has_recent_.load(std::memory_order_relaxed) || !message.id.known()) return false;
  std::lock_guard lock(mu_);
  return remembered_locked(message.id, Clock::now());
}

void Session::remember_ids(std::span<const MessageId> ids, Clock::time_point now) {
  std::lock_guard lock(mu_);
  for (const MessageId& id : ids) {
    if (id.known()) remember_locked(id, now);
  }
}

std::vector<MessageId> Session::done_ids() const {
  std::lock_guard lock(mu_);
  std::vector<MessageId> out;
  if (!recent_) return out;
  std::unordered_set<MessageId, MessageIdHash> here;
  if (flow_) {
    for (const Delivery& d : flow_->queue) here.insert(d.message->id);
    for (const Inflight& in : flow_->inflight) here.insert(in.delivery.message->id);
  }
  for (const auto* ids : {&recent_->current, &recent_->previous}) {
    for (const MessageId& id : *ids) {
      if (!here.contains(id)) out.push_back(id);
    }
  }
  return out;
}

size_t Session::forget_ids(std::span<const MessageId> ids, Clock::time_point now, std::vector<uint64_t>* forget) {
  std::lock_guard lock(mu_);
  std::unordered_set<MessageId, MessageIdHash> wanted;
  for (const MessageId& id : ids) {
    if (id.known()) wanted.insert(id);
  }
  size_t dropped = 0;
  if (flow_ && !wanted.empty()) {
    Flow& f = *flow_;
    auto kept = std::remove_if(f.queue.begin(), f.queue.end(), [&](const Delivery& d) {
      if (wanted.erase(d.message->id) == 0) return false;
      f.queued_bytes -= cost(d);
      if (forget != nullptr && d.sequence != 0) forget->push_back(d.sequence);
      ++dropped;
      return true;
    });
    f.queue.erase(kept, f.queue.end());
    drop_flow_if_empty_locked();
  }
  // Not queued yet: its copy is still on its way here.
  for (const MessageId& id : wanted) remember_locked(id, now);
  return dropped;
}

size_t Session::merge_queued(std::vector<Delivery> deliveries, Clock::time_point now, std::vector<Delivery>* stored) {
  std::lock_guard lock(mu_);
  Flow& f = make_flow_locked();
  std::unordered_set<MessageId, MessageIdHash> queued;
  for (const Delivery& d : f.queue) {
    if (d.message->id.known()) queued.insert(d.message->id);
  }
  for (const Inflight& in : f.inflight) {
    if (in.delivery.message->id.known()) queued.insert(in.delivery.message->id);
  }
  size_t added = 0;
  for (Delivery& d : deliveries) {
    const MessageId& id = d.message->id;
    if (id.known() && (queued.contains(id) || remembered_locked(id, now))) continue;
    if (id.known()) {
      queued.insert(id);
      remember_locked(id, now);
    }
    d.sequence = 0;
    if (stored != nullptr && assign_sequence(d)) stored->push_back(d);
    f.queued_bytes += cost(d);
    push_grow(f.queue, std::move(d));
    ++added;
  }
  drop_flow_if_empty_locked();
  return added;
}

std::vector<uint16_t> Session::inbound_qos2_snapshot() const {
  std::lock_guard lock(mu_);
  return inbound_qos2_;
}

Session::Found Session::complete(uint16_t packet_id, mqtt::QoS expected) {
  std::lock_guard lock(mu_);
  const size_t i = find_inflight_locked(packet_id);
  if (i == kNotInflight || flow_->inflight[i].delivery.qos != expected) return {};
  if (expected == mqtt::QoS::k2 && !flow_->inflight[i].released) return {};
  Flow& f = *flow_;
  const uint64_t sequence = f.inflight[i].delivery.sequence;
  if (sequence != 0) f.completed_stored_bytes += cost(f.inflight[i].delivery);
  const MessageId id = f.inflight[i].delivery.message->id;
  last_completed_ = id;
  erase_inflight_locked(i);
  bool drained = false;
  if (f.queue.empty() && f.inflight.empty()) {
    drained = f.completed_stored_bytes >= kCompactAfterBytes;
    f.completed_stored_bytes = 0;
  }
  return {true, sequence, id, drained};
}

Session::Found Session::release(uint16_t packet_id) {
  std::lock_guard lock(mu_);
  const size_t i = find_inflight_locked(packet_id);
  if (i == kNotInflight || flow_->inflight[i].delivery.qos != mqtt::QoS::k2) return {};
  flow_->inflight[i].released = true;
  return {true, flow_->inflight[i].delivery.sequence, flow_->inflight[i].delivery.message->id};
}

Session::Found Session::discard(uint16_t packet_id) {
  std::lock_guard lock(mu_);
  const size_t i = find_inflight_locked(packet_id);
  if (i == kNotInflight) return {};
  const uint64_t sequence = flow_->inflight[i].delivery.sequence;
  const MessageId id = flow_->inflight[i].delivery.message->id;
  last_completed_ = id;
  erase_inflight_locked(i);
  return {true, sequence, id};
}

size_t Session::inflight_count() const {
  std::lock_guard lock(mu_);
  return flow_locked().inflight.size();
}

size_t Session::queued_count() const {
  std::lock_guard lock(mu_);
  return flow_locked().queue.size();
}

void Session::drop_flow_if_empty_locked() {
  if (flow_ && flow_->queue.empty() && flow_->inflight.empty()) flow_.reset();
}

void Session::trim() {
  std::lock_guard lock(mu_);
  drop_flow_if_empty_locked();
  release_if_drained(inbound_qos2_, 0);
  release_if_drained(room_waiters_, 0);
}

Session::Inbound Session::begin_inbound_qos2(uint16_t packet_id, size_t limit) {
  std::lock_guard lock(mu_);
  auto it = std::lower_bound(inbound_qos2_.begin(), inbound_qos2_.end(), packet_id);
  if (it != inbound_qos2_.end() && *it == packet_id) return Inbound::kDuplicate;
  if (inbound_qos2_.size() >= limit) return Inbound::kOverLimit;
  inbound_qos2_.insert(it, packet_id);
  return Inbound::kNew;
}

bool Session::end_inbound_qos2(uint16_t packet_id) {
  std::lock_guard lock(mu_);
  auto it = std::lower_bound(inbound_qos2_.begin(), inbound_qos2_.end(), packet_id);
  if (it == inbound_qos2_.end() || *it != packet_id) return false;
  inbound_qos2_.erase(it);
  release_if_drained(inbound_qos2_, kKeptRing);  // after a burst
  return true;
}

size_t Session::inbound_qos2_count() const {
  std::lock_guard lock(mu_);
  return inbound_qos2_.size();
}

bool Session::add_subscription(const std::string& filter, const SubscriptionRecord& record) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = subscriptions_.insert_or_assign(filter, record);
  return inserted;
}

bool Session::remove_subscription(const std::string& filter) {
  std::lock_guard lock(mu_);
  return subscriptions_.erase(filter) == 1;
}

std::map<std::string, SubscriptionRecord> Session::subscriptions() const {
  std::lock_guard lock(mu_);
  return subscriptions_;
}

void Session::set_expiry_interval(uint32_t seconds) {
  std::lock_guard lock(mu_);
  expiry_interval_ = seconds;
}

uint32_t Session::expiry_interval() const {
  std::lock_guard lock(mu_);
  return expiry_interval_;
}

std::optional<Clock::time_point> Session::disconnected_at() const {
  std::lock_guard lock(mu_);
  return disconnected_at_;
}

void Session::cancel_pending_will() {
  std::lock_guard lock(mu_);
  pending_will_.reset();
}

bool Session::set_pending_will_if_offline(WillMessage will) {
  std::lock_guard lock(mu_);
  if (listener_raw_ != nullptr) return false;
  pending_will_ = std::make_unique<WillMessage>(std::move(will));
  return true;
}

std::optional<WillMessage> Session::take_pending_will() {
  std::lock_guard lock(mu_);
  if (!pending_will_) return std::nullopt;
  auto will = std::move(pending_will_);
  return std::move(*will);
}

void Session::set_copied_will(std::optional<WillRecord> will) {
  std::lock_guard lock(mu_);
  copied_will_ = will ? std::make_unique<WillRecord>(std::move(*will)) : nullptr;
}

bool Session::drop_copied_will_if_offline() {
  std::lock_guard lock(mu_);
  if (listener_raw_ != nullptr || !copied_will_) return false;
  copied_will_.reset();
  return true;
}

std::optional<WillRecord> Session::copied_will() const {
  std::lock_guard lock(mu_);
  if (!copied_will_) return std::nullopt;
  return *copied_will_;
}

std::optional<Clock::time_point> Session::pending_will_due() const {
  std::lock_guard lock(mu_);
  if (!pending_will_) return std::nullopt;
  return pending_will_->due;
}

void Session::restore_queued(Delivery d) {
  std::lock_guard lock(mu_);
  Flow& f = make_flow_locked();
  f.queued_bytes += cost(d);
  if (d.sequence >= next_sequence_.load(std::memory_order_relaxed)) {
    next_sequence_.store(d.sequence + 1, std::memory_order_relaxed);
  }
  push_grow(f.queue, std::move(d));
}

bool Session::restore_released(uint64_t sequence) {
  std::lock_guard lock(mu_);
  if (!flow_) return false;
  auto& queue = flow_->queue;
  auto it = std::find_if(queue.begin(), queue.end(), [&](const Delivery& d) { return d.sequence == sequence; });
  if (it == queue.end() || it->qos != mqtt::QoS::k2) return false;
  const uint16_t id = packet_id_of(sequence);
  if (find_inflight_locked(id) != kNotInflight) return false;
  flow_->queued_bytes -= cost(*it);
  // Released: counted as sent, so its PUBREL (released_ids) goes again, not
  // the PUBLISH.
  push_grow(flow_->inflight, Inflight{id, std::move(*it), true, true});
  flow_->inflight_ids.push_back(id);
  queue.erase(it);
  return true;
}

bool Session::assign_sequence_for(Delivery& d, uint16_t packet_id) {
  if (!persistent() || d.qos == mqtt::QoS::k0 || packet_id == 0) return false;
  // The first sequence from the next one on whose id is packet_id: sequences
  // stay in order, with a gap.
  uint64_t next = next_sequence_.load(std::memory_order_relaxed);
  do {
    d.sequence = next + (uint64_t{packet_id} - 1 + 65535 - next % 65535) % 65535;
  } while (!next_sequence_.compare_exchange_weak(next, d.sequence + 1, std::memory_order_relaxed));
  return true;
}

void Session::restore_inflight(Delivery d, uint16_t packet_id, bool released) {
  std::lock_guard lock(mu_);
  Flow& f = make_flow_locked();
  if (packet_id == 0 || find_inflight_locked(packet_id) != kNotInflight) {
    // No id, or one taken already (a damaged hand-over): queued, as new.
    f.queued_bytes += cost(d);
    push_grow(f.queue, std::move(d));
    return;
  }
  // The next connection sends it again (DUP), or its PUBREL when released.
  const bool sent = released;
  push_grow(f.inflight, Inflight{packet_id, std::move(d), released, sent});
  f.inflight_ids.push_back(packet_id);
  f.inflight_unsent += !sent;
}

void Session::restore_inbound_qos2(uint16_t packet_id) { begin_inbound_qos2(packet_id, SIZE_MAX); }

void Session::restore_offline(Clock::time_point disconnected_at, uint16_t last_packet_id) {
  std::lock_guard lock(mu_);
  disconnected_at_ = disconnected_at;
  last_packet_id_ = last_packet_id;
}

uint16_t Session::last_packet_id() const {
  std::lock_guard lock(mu_);
  return last_packet_id_;
}

}  // namespace starling::broker
