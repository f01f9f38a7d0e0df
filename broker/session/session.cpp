#include "broker/session/session.h"

#include <algorithm>

namespace starling::broker {

namespace {

size_t cost(const Message& m) { return m.topic.size() + m.payload.size(); }
size_t cost(const Delivery& d) { return cost(*d.message); }

}  // namespace

Session::Session(std::string client_id, SessionId id, QueueLimits limits)
    : client_id_(std::move(client_id)), id_(id), limits_(limits) {}

bool Session::has_room(const Message& message) const {
  std::lock_guard lock(mu_);
  return queue_.size() < limits_.messages && queued_bytes_ + cost(message) <= limits_.bytes;
}

Session::Enqueued Session::enqueue(Delivery d, Clock::time_point now, bool checked) {
  if (d.message->expired(now)) return Enqueued::kExpired;
  std::shared_ptr<SessionListener> listener;
  {
    std::lock_guard lock(mu_);
    listener = listener_.lock();
    if (d.qos == mqtt::QoS::k0 && !listener) return Enqueued::kDroppedQos0;
    if (!checked && (queue_.size() >= limits_.messages || queued_bytes_ + cost(d) > limits_.bytes))
      return d.qos == mqtt::QoS::k0 ? Enqueued::kDroppedQos0 : Enqueued::kQueueFull;
    const bool was_empty = queue_.empty();
    queued_bytes_ += cost(d);
    queue_.push_back(std::move(d));
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
  for (auto& [id, f] : inflight_) f.sent = f.released;  // unreleased ones go again
  listener_ = std::move(listener);
  disconnected_at_.reset();
  return previous;
}

bool Session::detach(const SessionListener* listener) {
  std::lock_guard lock(mu_);
  if (listener_raw_ != listener) return false;
  listener_.reset();
  listener_raw_ = nullptr;
  disconnected_at_ = Clock::now();
  // QoS 0 messages are not kept for an absent client.
  std::erase_if(queue_, [this](const Delivery& d) {
    if (d.qos != mqtt::QoS::k0) return false;
    queued_bytes_ -= cost(d);
    return true;
  });
  return true;
}

bool Session::online() const {
  std::lock_guard lock(mu_);
  return listener_raw_ != nullptr;
}

uint16_t Session::next_packet_id_locked() {
  // Packet ids in use are few (bounded by the window): skip them.
  do {
    last_packet_id_ = static_cast<uint16_t>(last_packet_id_ == 65535 ? 1 : last_packet_id_ + 1);
  } while (inflight_.contains(last_packet_id_));
  return last_packet_id_;
}

void Session::take_ready(const SessionListener* listener, size_t window, Clock::time_point now,
                         std::vector<Ready>& out, size_t& expired) {
  std::lock_guard lock(mu_);
  if (listener == nullptr || listener != listener_raw_) return;  // a replaced connection sends nothing
  size_t unacknowledged = 0;
  for (const auto& [id, f] : inflight_) unacknowledged += f.sent;
  for (uint16_t id : inflight_order_) {
    if (unacknowledged >= window) break;
    Inflight& f = inflight_.at(id);
    if (f.sent) continue;
    f.sent = true;
    ++unacknowledged;
    out.push_back({id, f.delivery, /*dup=*/true});
  }
  while (!queue_.empty()) {
    Delivery& d = queue_.front();
    queued_bytes_ -= cost(d);
    if (d.message->expired(now)) {
      ++expired;
      queue_.pop_front();
      continue;
    }
    if (d.qos == mqtt::QoS::k0) {
      out.push_back({0, std::move(d)});
      queue_.pop_front();
      continue;
    }
    if (inflight_.size() >= window || inflight_.size() >= 65535) {
      queued_bytes_ += cost(d);  // stays queued
      break;
    }
    const uint16_t id = next_packet_id_locked();
    inflight_.emplace(id, Inflight{id, d, false, true});
    inflight_order_.push_back(id);
    out.push_back({id, std::move(d)});
    queue_.pop_front();
  }
}

std::vector<uint16_t> Session::released_ids() const {
  std::lock_guard lock(mu_);
  std::vector<uint16_t> out;
  for (uint16_t id : inflight_order_)
    if (inflight_.at(id).released) out.push_back(id);
  return out;
}

std::vector<Inflight> Session::inflight_snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<Inflight> out;
  out.reserve(inflight_order_.size());
  for (uint16_t id : inflight_order_) out.push_back(inflight_.at(id));
  return out;
}

bool Session::complete(uint16_t packet_id, mqtt::QoS expected) {
  std::lock_guard lock(mu_);
  auto it = inflight_.find(packet_id);
  if (it == inflight_.end() || it->second.delivery.qos != expected) return false;
  if (expected == mqtt::QoS::k2 && !it->second.released) return false;
  inflight_.erase(it);
  std::erase(inflight_order_, packet_id);
  return true;
}

bool Session::release(uint16_t packet_id) {
  std::lock_guard lock(mu_);
  auto it = inflight_.find(packet_id);
  if (it == inflight_.end() || it->second.delivery.qos != mqtt::QoS::k2) return false;
  it->second.released = true;
  return true;
}

void Session::discard(uint16_t packet_id) {
  std::lock_guard lock(mu_);
  inflight_.erase(packet_id);
  std::erase(inflight_order_, packet_id);
}

size_t Session::inflight_count() const {
  std::lock_guard lock(mu_);
  return inflight_.size();
}

size_t Session::queued_count() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

Session::Inbound Session::begin_inbound_qos2(uint16_t packet_id, size_t limit) {
  std::lock_guard lock(mu_);
  if (inbound_qos2_.contains(packet_id)) return Inbound::kDuplicate;
  if (inbound_qos2_.size() >= limit) return Inbound::kOverLimit;
  inbound_qos2_.insert(packet_id);
  return Inbound::kNew;
}

bool Session::end_inbound_qos2(uint16_t packet_id) {
  std::lock_guard lock(mu_);
  return inbound_qos2_.erase(packet_id) == 1;
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
  pending_will_ = std::move(will);
  return true;
}

std::optional<WillMessage> Session::take_pending_will() {
  std::lock_guard lock(mu_);
  auto will = std::move(pending_will_);
  pending_will_.reset();
  return will;
}

std::optional<Clock::time_point> Session::pending_will_due() const {
  std::lock_guard lock(mu_);
  if (!pending_will_) return std::nullopt;
  return pending_will_->due;
}

}  // namespace starling::broker
