// Start-up: the persistent sessions read back from the node's store
// (SessionRegistry::restore), the inverse of session_records.cpp.
#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "broker/session/session_registry.h"
#include "storage/records.h"

namespace starling::broker {

namespace chrono = std::chrono;
using storage::Column;

namespace {

Clock::time_point steady_of(int64_t wall_ms, const ClockPair& now) {
  const chrono::system_clock::time_point wall{chrono::milliseconds(wall_ms)};
  return now.steady + chrono::duration_cast<Clock::duration>(wall - now.wall);
}

storage::StoreError damaged(std::string what, std::string_view client_id) {
  return {storage::StoreErrc::corruption, what + " (client '" + std::string(client_id) + "')"};
}

// One client's newest session record, as found on disk.
struct Found {
  uint64_t first_sequence = 0;
  storage::SessionRecord record;
};

}  // namespace

storage::Result<SessionRegistry::Restored> SessionRegistry::restore(storage::KvStore& store, const ClockPair& now) {
  Restored restored;
  storage::WriteBatch erase;  // what is stale or expired
  std::optional<storage::StoreError> failed;
  uint64_t highest = 0;  // sequence number or epoch, to start new ones above
  auto fail = [&](storage::StoreError e) {
    failed = std::move(e);
    return false;
  };

  // Sessions: per client the newest epoch; older ones are left from sessions
  // that ended (a late write after their erasure).
  std::unordered_map<std::string, Found> found;
  auto status = store.scan_prefix(Column::sessions, "", [&](std::string_view key, std::string_view value) {
    auto k = storage::parse_session_key(key);
    if (!k) return fail({storage::StoreErrc::corruption, "a session key of unknown shape"});
    auto record = storage::decode_session(value);
    if (!record) return fail(damaged(record.error().message, k->client_id));
    highest = std::max(highest, k->number);
    auto [it, inserted] = found.try_emplace(k->client_id);
    if (!inserted) {
      // Keys of one client come in epoch order: the earlier one is stale.
      erase.erase(Column::sessions, storage::session_key(k->client_id, it->second.first_sequence));
      ++restored.dropped;
    }
    it->second = Found{k->number, std::move(*record)};
    return true;
  });
  if (!status) return status.error();
  if (failed) return *failed;

  std::vector<WillMessage> expired_wills;
  for (auto& [client_id, f] : found) {
    const storage::SessionRecord& r = f.record;
    // Connected when the node stopped: its connection was lost then, which
    // for the session means now.
    const Clock::time_point since = r.disconnected_at_ms == 0 ? now.steady : steady_of(r.disconnected_at_ms, now);
    std::optional<WillMessage> will;
    if (r.will) {
      MessagePtr message = from_stored(r.will->message, now);
      if (!message) return damaged("damaged will properties", client_id);
      will = WillMessage{std::move(message), since + chrono::seconds(r.will->delay_s), since};
    }
    if (r.expiry_s != UINT32_MAX && since + chrono::seconds(r.expiry_s) <= now.steady) {
      // Expired while the node was down: it ends, and its will goes out
      // (the session's end is due at the latest) [MQTT-3.1.3-9].
      if (will) expired_wills.push_back(std::move(*will));
      erase_client(erase, client_id);
      ++restored.expired;
      continue;
    }
    auto session = std::make_shared<Session>(client_id, next_id_++, queue_limits_, f.first_sequence);
    session->set_expiry_interval(r.expiry_s);
    session->restore_offline(since, r.next_packet_id);
    session->set_connect_epoch(r.connect_epoch);
    for (const auto& sub : r.subscriptions) {
      auto options = mqtt::parse_options_byte(sub.options);
      if (!options) return damaged("a stored subscription's options are damaged", client_id);
      session->add_subscription(sub.filter, SubscriptionRecord{*options, sub.identifier});
      router_.subscribe(session, sub.filter, SubscriptionEntry{*options, sub.identifier});
    }
    if (will) session->set_pending_will_if_offline(std::move(*will));
    std::lock_guard lock(mu_);
    sessions_[client_id] = session;
    offline_.insert(session);
    ++restored.sessions;
  }

  // Copies of other nodes' sessions (session_replicas.cpp): dormant, not
  // routed, until their owners open them again or they are promoted.
  status = store.scan_prefix(Column::cluster, storage::kCopyKeyPrefix, [&](std::string_view key, std::string_view value) {
    const std::string client_id(key.substr(storage::kCopyKeyPrefix.size()));
    auto record = storage::decode_copy(value);
    if (!record) return fail(damaged(record.error().message, client_id));
    highest = std::max(highest, record->first_sequence);
    auto copy = std::make_shared<Session>(client_id, next_id_++, queue_limits_, record->first_sequence, /*copy=*/true);
    copy->set_expiry_interval(record->expiry_s);
    copy->set_connect_epoch(record->connect_epoch);
    for (const auto& sub : record->subscriptions) {
      auto options = mqtt::parse_options_byte(sub.options);
      if (!options) return fail(damaged("a stored subscription's options are damaged", client_id));
      copy->add_subscription(sub.filter, SubscriptionRecord{*options, sub.identifier});
    }
    std::optional<WillRecord> will;
    if (record->will) {
      MessagePtr message = from_stored(record->will->message, now);
      if (!message) return fail(damaged("damaged will properties", client_id));
      will = WillRecord{std::move(message), record->will->delay_s};
    }
    std::lock_guard lock(mu_);
    Replica& r = dormant_[client_id];
    r.will = std::move(will);
    r.session = std::move(copy);
    r.owner = std::move(record->owner);
    r.generation = record->generation;
    r.replicas = std::move(record->replicas);
    ++restored.copies;
    return true;
  });
  if (!status) return status.error();
  if (failed) return *failed;

  // The session a key of a client column belongs to: null when there is none
  // (it ended, or an earlier one of the client id wrote it late). A key of a
  // copy (storage::copy_store_id) belongs to the copy, with its Replica.
  auto owner = [&](const std::string& store_id) -> std::pair<std::shared_ptr<Session>, Replica*> {
    std::lock_guard lock(mu_);
    if (auto copied = storage::copied_client_id(store_id)) {
      auto it = dormant_.find(std::string(*copied));
      if (it == dormant_.end()) return {nullptr, nullptr};
      return {it->second.session, &it->second};
    }
    auto it = sessions_.find(store_id);
    return {it == sessions_.end() ? nullptr : it->second, nullptr};
  };

  status = store.scan_prefix(Column::queue, "", [&](std::string_view key, std::string_view value) {
    auto k = storage::parse_queue_key(key);
    if (!k) return fail({storage::StoreErrc::corruption, "a queue key of unknown shape"});
    highest = std::max(highest, k->number);
    auto [session, copy] = owner(k->client_id);
    if (!session || k->number < session->first_sequence()) {
      erase.erase(Column::queue, std::string(key));
      ++restored.dropped;
      return true;
    }
    auto record = storage::decode_queued(value);
    if (!record) return fail(damaged(record.error().message, k->client_id));
    MessagePtr message = from_stored(record->message, now, /*from_peer=*/false,
                                     MessageId{record->id_origin, record->id_publisher, record->id_serial});
    if (!message) return fail(damaged("damaged properties of a queued message", k->client_id));
    if (message->expired(now.steady)) {
      erase.erase(Column::queue, std::string(key));
      ++restored.dropped;
      return true;
    }
    Delivery d;
    d.message = std::move(message);
    d.qos = static_cast<mqtt::QoS>(record->qos);
    d.retain = record->retain;
    d.subscription_ids = std::move(record->subscription_ids);
    d.sequence = k->number;
    d.dup = true;  // it may have been sent before the node stopped
    session->restore_queued(std::move(d));
    ++restored.queued;
    return true;
  });
  if (!status) return status.error();
  if (failed) return *failed;

  status = store.scan_prefix(Column::inflight, "", [&](std::string_view key, std::string_view value) {
    auto k = storage::parse_packet_key(key);
    if (!k) return fail({storage::StoreErrc::corruption, "an in-flight key of unknown shape"});
    auto record = storage::decode_inflight(value);
    if (!record) return fail(damaged(record.error().message, k->client_id));
    auto [session, copy] = owner(k->client_id);
    if (copy != nullptr) {
      // The owner's packet id of one of its messages.
      const MessageId id{record->id_origin, record->id_publisher, record->id_serial};
      if (id.known()) {
        (record->released ? copy->released : copy->sent)[id] = static_cast<uint16_t>(k->number);
        return true;
      }
      session = nullptr;
    }
    // Its message completed meanwhile, or belongs to an ended session.
    if (!session || !record->released || !session->restore_released(record->sequence)) {
      erase.erase(Column::inflight, std::string(key));
      ++restored.dropped;
    }
    return true;
  });
  if (!status) return status.error();
  if (failed) return *failed;

  status = store.scan_prefix(Column::inbound_qos2, "", [&](std::string_view key, std::string_view value) {
    auto k = storage::parse_packet_key(key);
    if (!k) return fail({storage::StoreErrc::corruption, "an inbound QoS 2 key of unknown shape"});
    auto record = storage::decode_inbound(value);
    if (!record) return fail(damaged(record.error().message, k->client_id));
    auto [session, copy] = owner(k->client_id);
    if (!session || record->first_sequence != session->first_sequence()) {
      erase.erase(Column::inbound_qos2, std::string(key));
      ++restored.dropped;
      return true;
    }
    const auto packet_id = static_cast<uint16_t>(k->number);
    if (copy != nullptr) {
      copy->inbound_qos2.push_back(packet_id);  // in key order: sorted
    } else {
      session->restore_inbound_qos2(packet_id);
    }
    return true;
  });
  if (!status) return status.error();
  if (failed) return *failed;

  if (!erase.empty()) {
    if (auto s = store.write(erase); !s) return s.error();
  }
  // New sessions start above everything seen, stale records included.
  next_first_sequence_ = (highest / kSequenceRange + 1) * kSequenceRange;
  for (const auto& will : expired_wills) publish_will(will, now.steady);
  return restored;
}

}  // namespace starling::broker
