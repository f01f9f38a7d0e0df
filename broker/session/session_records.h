// What a persistent session writes to the node's store, one function per
// change, each adding to the write batch of the MQTT operation that made it
// (storage/records.h has the layout). Clean sessions write nothing: callers
// check Session::persistent() first.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "broker/routing/router.h"
#include "broker/session/session.h"
#include "broker/stored_message.h"
#include "storage/kv_store.h"

namespace starling::broker {

// The session itself: expiry, subscriptions, will, when it went offline.
void put_session(storage::WriteBatch& batch, const Session& session, const WillRecord* will, const ClockPair& now);
// Everything stored under the client id, by any session that had it.
void erase_client(storage::WriteBatch& batch, std::string_view client_id);

// A QoS 1/2 delivery queued for the session (it has its sequence number).
void put_queued(storage::WriteBatch& batch, const Session& session, const Delivery& delivery, const ClockPair& now);
// The same for each QoS 1/2 delivery of `route` to a persistent session,
// which gets its sequence number here: call it between Router::route and
// Router::deliver, and submit the batch before deliver(), so that no session
// can send (and have acknowledged and erased) what is not yet written.
// `check_room`: a best-effort route, whose deliveries had no room check; one
// to a full session is not stored (deliver() then drops it).
void put_queued(storage::WriteBatch& batch, Router::Route& route, const ClockPair& now, bool check_room);
// Completed, expired or refused: the delivery, and its in-flight state when
// it was `released`.
void erase_queued(storage::WriteBatch& batch, const Session& session, uint64_t sequence, bool released = false);
// The records of stored deliveries that Router::deliver did not queue after
// all (Router::Published::unqueued); submitted after the batch that put them.
void erase_unqueued(storage::WriteBatch& batch, const Router::Published& published);
// PUBREC received for a stored QoS 2 delivery: its PUBREL is what goes again.
void put_released(storage::WriteBatch& batch, const Session& session, uint64_t sequence);

// An inbound QoS 2 message delivered, awaiting PUBREL; and its release.
void put_inbound_qos2(storage::WriteBatch& batch, const Session& session, uint16_t packet_id);
void erase_inbound_qos2(storage::WriteBatch& batch, const Session& session, uint16_t packet_id);

// --- a copy of a session another node owns (Session::is_copy) ---
// Its queue goes through put_queued and erase_queued like any session's,
// under storage::copy_store_id, apart from a session of the client's own.

// Whose copy it is, and the session's terms: subscriptions, expiry, epoch.
void put_copy(storage::WriteBatch& batch, const Session& copy, const std::string& owner, uint64_t generation,
              const std::vector<std::string>& replicas, const WillRecord* will, const ClockPair& now);
// The owner's packet id for one of its messages it sent (QoS 2) or had
// released (PUBREC received); and the end of it.
void put_copy_inflight(storage::WriteBatch& batch, const Session& copy, uint16_t packet_id, const MessageId& id,
                       bool released);
void erase_copy_inflight(storage::WriteBatch& batch, const Session& copy, uint16_t packet_id);
// Everything stored of the client's copy.
void erase_copy(storage::WriteBatch& batch, std::string_view client_id);

}  // namespace starling::broker
