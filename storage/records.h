#pragma once

// What a node stores about sessions and messages, as plain records, and how
// they are laid out: the keys of each column (DESIGN.md "Storage") and the
// byte encoding of each value. The broker converts its own types to these;
// nothing here knows about connections or RocksDB.
//
// Keys: a client's records sit together and in order under client_prefix(id),
// so one prefix scan reads all of a client's queue (by sequence number) or
// in-flight window (by packet id), and one range deletes it.
//
// Values start with a record version byte; a decoder refuses a version it
// does not know, and a record cut short or with bytes left over, as
// StoreErrc::corruption.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/result.h"

namespace starling::storage {

// An application message as stored: for a queue entry, an in-flight entry, a
// will or a retained message.
struct StoredMessage {
  std::string topic;
  std::string payload;
  std::uint8_t qos = 0;
  bool retain = false;
  // The MQTT 5 properties that travel with the message, in their wire
  // encoding (without the length prefix); empty when there are none.
  std::string properties;
  // Wall-clock deadline in Unix milliseconds; 0: never expires.
  std::int64_t expires_at_ms = 0;

  friend bool operator==(const StoredMessage&, const StoredMessage&) = default;
};

struct StoredSubscription {
  std::string filter;
  std::uint8_t options = 0;  // the SUBSCRIBE options byte (QoS, no local, RAP, retain handling)
  std::uint32_t identifier = 0;  // 0: none

  friend bool operator==(const StoredSubscription&, const StoredSubscription&) = default;
};

struct StoredWill {
  StoredMessage message;
  std::uint32_t delay_s = 0;

  friend bool operator==(const StoredWill&, const StoredWill&) = default;
};

// Column::sessions, one per persistent session.
struct SessionRecord {
  std::uint32_t expiry_s = 0;  // session expiry interval; 0xFFFFFFFF: never
  // When the client disconnected (Unix ms); 0 while connected. With expiry_s
  // it says when the session ends.
  std::int64_t disconnected_at_ms = 0;
  std::uint16_t next_packet_id = 1;
  // The session's first queue sequence number. Queue entries of the same
  // client id below it belong to an earlier session (written late, after that
  // one ended) and are dropped on load.
  std::uint64_t first_sequence = 0;
  std::vector<StoredSubscription> subscriptions;
  std::optional<StoredWill> will;
  // The epoch of the CONNECT in a cluster that last opened the session (0:
  // none, or a record written before version 2): of two nodes' copies, the
  // newer one is the client's.
  std::uint64_t connect_epoch = 0;

  friend bool operator==(const SessionRecord&, const SessionRecord&) = default;
};

// Column::queue: a delivery waiting to be sent.
struct QueuedRecord {
  StoredMessage message;
  std::uint8_t qos = 0;  // as granted to this subscriber
  bool retain = false;   // as it goes out
  std::vector<std::uint32_t> subscription_ids;
  // Which message it is (origin node, publishing session, its count; all 0:
  // not known, or a record written before version 2): a copy of it another
  // node sends back is told apart by it.
  std::uint64_t id_origin = 0;
  std::uint64_t id_publisher = 0;
  std::uint64_t id_serial = 0;

  friend bool operator==(const QueuedRecord&, const QueuedRecord&) = default;
};

// Column::inflight, by packet id: the state of an outbound QoS 1/2 delivery
// whose message stays in Column::queue under `sequence` until it completes.
// For a copy of another node's session (copy_store_id) the packet id is the
// owner's, and the message is named by its id instead (sequence 0).
struct InflightRecord {
  std::uint64_t sequence = 0;
  bool released = false;  // QoS 2: PUBREC received, PUBREL sent
  std::uint64_t id_origin = 0;  // all 0 in a version 1 record
  std::uint64_t id_publisher = 0;
  std::uint64_t id_serial = 0;

  friend bool operator==(const InflightRecord&, const InflightRecord&) = default;
};

// Column::inbound_qos2, by packet id: an inbound QoS 2 message delivered
// and awaiting its PUBREL.
struct InboundRecord {
  std::uint64_t first_sequence = 0;  // of the session that stored it (its epoch)

  friend bool operator==(const InboundRecord&, const InboundRecord&) = default;
};

// Column::cluster, under copy_key: this node's copy (replica) of a session
// another node owns. Its queue and in-flight records sit in those columns
// under copy_store_id(client id).
struct CopyRecord {
  std::string owner;                  // node id
  std::uint64_t generation = 0;       // the owner's session
  std::vector<std::string> replicas;  // the nodes with a copy
  std::uint32_t expiry_s = 0;
  std::uint64_t connect_epoch = 0;
  std::uint64_t first_sequence = 0;  // of the copy's queue records here
  std::vector<StoredSubscription> subscriptions;
  // The client's will, for whichever copy becomes the session after its
  // owner died (none in a version 1 record).
  std::optional<StoredWill> will;

  friend bool operator==(const CopyRecord&, const CopyRecord&) = default;
};

// --- keys ---

// The id a copy's records are stored under, apart from a session of the
// client's own on this node: MQTT forbids U+0000 in a client id
// [MQTT-1.5.4-2], so none starts with it.
std::string copy_store_id(std::string_view client_id);
// The client id of a copy_store_id; std::nullopt for a client's own id.
std::optional<std::string_view> copied_client_id(std::string_view store_id);
// Column::cluster: a copy's record.
std::string copy_key(std::string_view client_id);
inline constexpr std::string_view kCopyKeyPrefix = "copies/";

// Every key of one client starts with this: a 2-byte big-endian length, then
// the id, so "a" never prefixes the keys of "ab".
std::string client_prefix(std::string_view client_id);
// Column::sessions: by client, then the session's epoch (its first
// sequence number), so a late write of an ended session never overwrites its
// successor's record.
std::string session_key(std::string_view client_id, std::uint64_t first_sequence);
// Column::queue: in sequence order within the client.
std::string queue_key(std::string_view client_id, std::uint64_t sequence);
// Column::inflight and Column::inbound_qos2: by packet id within the client.
std::string packet_key(std::string_view client_id, std::uint16_t packet_id);
// Column::retained.
std::string retained_key(std::string_view topic);

// What a key of the columns above holds (std::nullopt for a key of another
// shape).
struct ClientKey {
  std::string client_id;
  std::uint64_t number = 0;  // sequence, packet id, or a session's first sequence
};
std::optional<ClientKey> parse_queue_key(std::string_view key);
std::optional<ClientKey> parse_packet_key(std::string_view key);
std::optional<ClientKey> parse_session_key(std::string_view key);

// --- values ---

std::string encode(const SessionRecord& record);
std::string encode(const QueuedRecord& record);
std::string encode(const InflightRecord& record);
std::string encode(const InboundRecord& record);
std::string encode(const StoredMessage& message);  // retained
std::string encode(const CopyRecord& record);

Result<SessionRecord> decode_session(std::string_view bytes);
Result<QueuedRecord> decode_queued(std::string_view bytes);
Result<InflightRecord> decode_inflight(std::string_view bytes);
Result<InboundRecord> decode_inbound(std::string_view bytes);
Result<StoredMessage> decode_message(std::string_view bytes);
Result<CopyRecord> decode_copy(std::string_view bytes);

}  // namespace starling::storage
