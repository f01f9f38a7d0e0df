#include "broker/session/session_records.h"

#include <string>

#include "storage/records.h"

namespace starling::broker {

namespace chrono = std::chrono;
using storage::Column;

namespace {

int64_t wall_ms(Clock::time_point at, const ClockPair& now) {
  const auto wall = now.wall + chrono::duration_cast<chrono::system_clock::duration>(at - now.steady);
  return chrono::duration_cast<chrono::milliseconds>(wall.time_since_epoch()).count();
}

// A key of `make`'s shape for the session's records: a copy's are kept
// apart from a session of the client's own.
template <typename Make, typename... Rest>
std::string key_of(Make make, const Session& session, Rest... rest) {
  if (!session.is_copy()) return make(session.client_id(), rest...);
  return make(storage::copy_store_id(session.client_id()), rest...);
}

std::vector<storage::StoredSubscription> stored_subscriptions(const Session& session) {
  std::vector<storage::StoredSubscription> out;
  for (const auto& [filter, sub] : session.subscriptions()) {
    out.push_back({filter, mqtt::options_byte(sub.options), sub.subscription_id});
  }
  return out;
}

}  // namespace

void put_session(storage::WriteBatch& batch, const Session& session, const WillRecord* will, const ClockPair& now) {
  storage::SessionRecord r;
  r.expiry_s = session.expiry_interval();
  if (auto since = session.disconnected_at()) r.disconnected_at_ms = std::max<int64_t>(1, wall_ms(*since, now));
  r.next_packet_id = session.last_packet_id();
  r.first_sequence = session.first_sequence();
  r.connect_epoch = session.connect_epoch();
  r.subscriptions = stored_subscriptions(session);
  if (will && will->message) r.will = storage::StoredWill{to_stored(*will->message, now), will->delay_s};
  batch.put(Column::sessions, storage::session_key(session.client_id(), session.first_sequence()),
            storage::encode(r));
}

void erase_client(storage::WriteBatch& batch, std::string_view client_id) {
  const std::string prefix = storage::client_prefix(client_id);
  for (Column c : {Column::sessions, Column::queue, Column::inflight, Column::inbound_qos2}) batch.erase_prefix(c, prefix);
}

void put_queued(storage::WriteBatch& batch, const Session& session, const Delivery& d, const ClockPair& now) {
  storage::QueuedRecord r;
  r.message = to_stored(*d.message, now);
  r.qos = static_cast<uint8_t>(d.qos);
  r.retain = d.retain;
  r.subscription_ids = d.subscription_ids;
  r.id_origin = d.message->id.origin;
  r.id_publisher = d.message->id.publisher;
  r.id_serial = d.message->id.serial;
  batch.put(Column::queue, key_of(storage::queue_key, session, d.sequence), storage::encode(r));
}

void put_queued(storage::WriteBatch& batch, Router::Route& route, const ClockPair& now, bool check_room) {
  if (route.quota_exceeded) return;
  for (auto& [session, d] : route.deliveries) {
    if (!session->persistent() || d.qos == mqtt::QoS::k0) continue;
    if (check_room && !session->has_room(*d.message)) continue;
    if (session->assign_sequence(d)) put_queued(batch, *session, d, now);
  }
}

void erase_queued(storage::WriteBatch& batch, const Session& session, uint64_t sequence, bool released) {
  batch.erase(Column::queue, key_of(storage::queue_key, session, sequence));
  if (released) batch.erase(Column::inflight, key_of(storage::packet_key, session, Session::packet_id_of(sequence)));
}

void erase_unqueued(storage::WriteBatch& batch, const Router::Published& published) {
  for (const auto& [session, sequence] : published.unqueued) erase_queued(batch, *session, sequence);
}

void put_released(storage::WriteBatch& batch, const Session& session, uint64_t sequence) {
  storage::InflightRecord r;
  r.sequence = sequence;
  r.released = true;
  batch.put(Column::inflight, key_of(storage::packet_key, session, Session::packet_id_of(sequence)),
            storage::encode(r));
}

void put_inbound_qos2(storage::WriteBatch& batch, const Session& session, uint16_t packet_id) {
  batch.put(Column::inbound_qos2, key_of(storage::packet_key, session, packet_id),
            storage::encode(storage::InboundRecord{session.first_sequence()}));
}

void erase_inbound_qos2(storage::WriteBatch& batch, const Session& session, uint16_t packet_id) {
  batch.erase(Column::inbound_qos2, key_of(storage::packet_key, session, packet_id));
}

void put_copy(storage::WriteBatch& batch, const Session& copy, const std::string& owner, uint64_t generation,
              const std::vector<std::string>& replicas, const WillRecord* will, const ClockPair& now) {
  storage::CopyRecord r;
  r.owner = owner;
  r.generation = generation;
  r.replicas = replicas;
  r.expiry_s = copy.expiry_interval();
  r.connect_epoch = copy.connect_epoch();
  r.first_sequence = copy.first_sequence();
  r.subscriptions = stored_subscriptions(copy);
  if (will && will->message) r.will = storage::StoredWill{to_stored(*will->message, now), will->delay_s};
  batch.put(Column::cluster, storage::copy_key(copy.client_id()), storage::encode(r));
}

void put_copy_inflight(storage::WriteBatch& batch, const Session& copy, uint16_t packet_id, const MessageId& id,
                       bool released) {
  storage::InflightRecord r;
  r.released = released;
  r.id_origin = id.origin;
  r.id_publisher = id.publisher;
  r.id_serial = id.serial;
  batch.put(Column::inflight, key_of(storage::packet_key, copy, packet_id), storage::encode(r));
}

void erase_copy_inflight(storage::WriteBatch& batch, const Session& copy, uint16_t packet_id) {
  batch.erase(Column::inflight, key_of(storage::packet_key, copy, packet_id));
}

void erase_copy(storage::WriteBatch& batch, std::string_view client_id) {
  batch.erase(Column::cluster, storage::copy_key(client_id));
  erase_client(batch, storage::copy_store_id(client_id));
}

}  // namespace starling::broker
