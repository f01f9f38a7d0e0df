#include "storage/records.h"

#include <algorithm>
#include <utility>

namespace starling::storage {
namespace {

// The version byte of each record's current encoding.
constexpr std::uint8_t kSessionV1 = 1;
constexpr std::uint8_t kSessionV2 = 2;  // V1, then the connect epoch
constexpr std::uint8_t kQueuedV1 = 1;
constexpr std::uint8_t kQueuedV2 = 2;  // V1, then the message id
constexpr std::uint8_t kInflightV1 = 1;
constexpr std::uint8_t kInflightV2 = 2;  // V1, then the message id
constexpr std::uint8_t kCopyV1 = 1;
constexpr std::uint8_t kCopyV2 = 2;  // V1, then the will
constexpr std::uint8_t kMessageV1 = 1;
constexpr std::uint8_t kInboundV1 = 1;

// Integers big-endian at fixed width; strings as a LEB128 length, then bytes.
class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) { fixed(v, 2); }
  void u32(std::uint32_t v) { fixed(v, 4); }
  void u64(std::uint64_t v) { fixed(v, 8); }
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void flag(bool v) { u8(v ? 1 : 0); }
  void length(std::uint64_t n) {
    do {
      std::uint8_t byte = n & 0x7f;
      n >>= 7;
      if (n != 0) byte |= 0x80;
      u8(byte);
    } while (n != 0);
  }
  void bytes(std::string_view s) {
    length(s.size());
    out_.append(s);
  }
  std::string take() { return std::move(out_); }

 private:
  void fixed(std::uint64_t v, int width) {
    for (int shift = 8 * (width - 1); shift >= 0; shift -= 8) u8(static_cast<std::uint8_t>(v >> shift));
  }
  std::string out_;
};

// Reads what Writer wrote; any shortfall sets failed() and yields zeros.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::uint8_t u8() { return static_cast<std::uint8_t>(fixed(1)); }
  std::uint16_t u16() { return static_cast<std::uint16_t>(fixed(2)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(fixed(4)); }
  std::uint64_t u64() { return fixed(8); }
  std::int64_t i64() { return static_cast<std::int64_t>(u64()); }
  bool flag() {
    const std::uint8_t v = u8();
    if (v > 1) failed_ = true;
    return v == 1;
  }
  std::uint64_t length() {
    std::uint64_t n = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const std::uint8_t byte = u8();
      if (failed_) return 0;
      n |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return n;
    }
    failed_ = true;
    return 0;
  }
  std::string bytes() {
    const std::uint64_t n = length();
    if (failed_ || n > in_.size() - at_) {
      failed_ = true;
      return {};
    }
    std::string s(in_.substr(at_, n));
    at_ += n;
    return s;
  }
  bool failed() const { return failed_; }
  // Everything read, nothing left over, no shortfall.
  bool complete() const { return !failed_ && at_ == in_.size(); }

 private:
  std::uint64_t fixed(int width) {
    if (failed_ || in_.size() - at_ < static_cast<std::size_t>(width)) {
      failed_ = true;
      return 0;
    }
    std::uint64_t v = 0;
    for (int i = 0; i < width; ++i) v = (v << 8) | static_cast<std::uint8_t>(in_[at_ + i]);
    at_ += width;
    return v;
  }
  std::string_view in_;
  std::size_t at_ = 0;
  bool failed_ = false;
};

void write_message(Writer& w, const StoredMessage& m) {
  w.bytes(m.topic);
  w.bytes(m.payload);
  w.u8(m.qos);
  w.flag(m.retain);
  w.bytes(m.properties);
  w.i64(m.expires_at_ms);
}

StoredMessage read_message(Reader& r) {
  StoredMessage m;
  m.topic = r.bytes();
  m.payload = r.bytes();
  m.qos = r.u8();
  m.retain = r.flag();
  m.properties = r.bytes();
  m.expires_at_ms = r.i64();
  return m;  // the decoders check the QoS values
}

void write_queued(Writer& w, const QueuedRecord& q) {
  write_message(w, q.message);
  w.u8(q.qos);
  w.flag(q.retain);
  w.length(q.subscription_ids.size());
  for (std::uint32_t id : q.subscription_ids) w.u32(id);
}

QueuedRecord read_queued(Reader& r) {
  QueuedRecord q;
  q.message = read_message(r);
  q.qos = r.u8();
  q.retain = r.flag();
  const std::uint64_t n = r.length();
  for (std::uint64_t i = 0; i < n && !r.failed(); ++i) q.subscription_ids.push_back(r.u32());
  return q;
}

// The message id of a queued or in-flight record (version 2 on).
template <class Record>
void write_id(Writer& w, const Record& r) {
  w.u64(r.id_origin);
  w.u64(r.id_publisher);
  w.u64(r.id_serial);
}

template <class Record>
void read_id(Reader& r, Record& out) {
  out.id_origin = r.u64();
  out.id_publisher = r.u64();
  out.id_serial = r.u64();
}

void write_subscriptions(Writer& w, const std::vector<StoredSubscription>& subscriptions) {
  w.length(subscriptions.size());
  for (const auto& sub : subscriptions) {
    w.bytes(sub.filter);
    w.u8(sub.options);
    w.u32(sub.identifier);
  }
}

std::vector<StoredSubscription> read_subscriptions(Reader& r) {
  std::vector<StoredSubscription> out;
  const std::uint64_t n = r.length();
  for (std::uint64_t i = 0; i < n && !r.failed(); ++i) {
    StoredSubscription sub;
    sub.filter = r.bytes();
    sub.options = r.u8();
    sub.identifier = r.u32();
    out.push_back(std::move(sub));
  }
  return out;
}

void write_will(Writer& w, const std::optional<StoredWill>& will) {
  w.flag(will.has_value());
  if (will) {
    write_message(w, will->message);
    w.u32(will->delay_s);
  }
}

std::optional<StoredWill> read_will(Reader& r) {
  if (!r.flag()) return std::nullopt;
  StoredWill will;
  will.message = read_message(r);
  will.delay_s = r.u32();
  return will;
}

StoreError corrupt(std::string_view what) {
  return {StoreErrc::corruption, "damaged " + std::string(what) + " record"};
}

// The version byte, then the body; the whole input must be used.
template <typename T, typename Read>
Result<T> decode_versioned(std::string_view bytes, std::uint8_t version, std::string_view what, Read read) {
  Reader r(bytes);
  const std::uint8_t v = r.u8();
  if (r.failed()) return corrupt(what);
  if (v != version) {
    return StoreError{StoreErrc::bad_format_version,
                      std::string(what) + " record version " + std::to_string(v) + " is unknown to this build"};
  }
  T value = read(r);
  if (!r.complete()) return corrupt(what);
  return value;
}

bool qos_ok(std::uint8_t qos) { return qos <= 2; }

}  // namespace

std::string client_prefix(std::string_view client_id) {
  // MQTT limits a client id (a UTF-8 string) to 65,535 bytes.
  const auto n = static_cast<std::uint16_t>(std::min<std::size_t>(client_id.size(), 0xffff));
  std::string key;
  key.reserve(2 + n + 8);
  key.push_back(static_cast<char>(n >> 8));
  key.push_back(static_cast<char>(n & 0xff));
  key.append(client_id.substr(0, n));
  return key;
}

std::string queue_key(std::string_view client_id, std::uint64_t sequence) {
  std::string key = client_prefix(client_id);
  for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(sequence >> shift));
  return key;
}

std::string session_key(std::string_view client_id, std::uint64_t first_sequence) {
  return queue_key(client_id, first_sequence);  // the same shape, in another column
}

std::string packet_key(std::string_view client_id, std::uint16_t packet_id) {
  std::string key = client_prefix(client_id);
  key.push_back(static_cast<char>(packet_id >> 8));
  key.push_back(static_cast<char>(packet_id & 0xff));
  return key;
}

std::string retained_key(std::string_view topic) { return std::string(topic); }

std::string copy_store_id(std::string_view client_id) {
  std::string id(1, '\0');
  id.append(client_id);
  return id;
}

std::optional<std::string_view> copied_client_id(std::string_view store_id) {
  if (store_id.empty() || store_id.front() != '\0') return std::nullopt;
  return store_id.substr(1);
}

std::string copy_key(std::string_view client_id) {
  std::string key(kCopyKeyPrefix);
  key.append(client_id);
  return key;
}

namespace {

// The client id of a key made by client_prefix, and what follows it.
std::optional<std::pair<std::string, std::string_view>> split_client_key(std::string_view key) {
  if (key.size() < 2) return std::nullopt;
  const std::size_t n = (static_cast<std::uint8_t>(key[0]) << 8) | static_cast<std::uint8_t>(key[1]);
  if (key.size() < 2 + n) return std::nullopt;
  return std::pair{std::string(key.substr(2, n)), key.substr(2 + n)};
}

std::optional<ClientKey> parse_numbered(std::string_view key, std::size_t width) {
  auto split = split_client_key(key);
  if (!split || split->second.size() != width) return std::nullopt;
  ClientKey out{std::move(split->first), 0};
  for (char c : split->second) out.number = (out.number << 8) | static_cast<std::uint8_t>(c);
  return out;
}

}  // namespace

std::optional<ClientKey> parse_queue_key(std::string_view key) { return parse_numbered(key, 8); }
std::optional<ClientKey> parse_packet_key(std::string_view key) { return parse_numbered(key, 2); }

std::optional<ClientKey> parse_session_key(std::string_view key) { return parse_numbered(key, 8); }

std::string encode(const SessionRecord& s) {
  Writer w;
  w.u8(kSessionV2);
  w.u32(s.expiry_s);
  w.i64(s.disconnected_at_ms);
  w.u16(s.next_packet_id);
  w.u64(s.first_sequence);
  write_subscriptions(w, s.subscriptions);
  write_will(w, s.will);
  w.u64(s.connect_epoch);
  return w.take();
}

std::string encode(const QueuedRecord& q) {
  Writer w;
  w.u8(kQueuedV2);
  write_queued(w, q);
  write_id(w, q);
  return w.take();
}

std::string encode(const InflightRecord& f) {
  Writer w;
  w.u8(kInflightV2);
  w.u64(f.sequence);
  w.flag(f.released);
  write_id(w, f);
  return w.take();
}

std::string encode(const CopyRecord& c) {
  Writer w;
  w.u8(kCopyV2);
  w.bytes(c.owner);
  w.u64(c.generation);
  w.length(c.replicas.size());
  for (const auto& node : c.replicas) w.bytes(node);
  w.u32(c.expiry_s);
  w.u64(c.connect_epoch);
  w.u64(c.first_sequence);
  write_subscriptions(w, c.subscriptions);
  write_will(w, c.will);
  return w.take();
}

std::string encode(const InboundRecord& r) {
  Writer w;
  w.u8(kInboundV1);
  w.u64(r.first_sequence);
  return w.take();
}

std::string encode(const StoredMessage& m) {
  Writer w;
  w.u8(kMessageV1);
  write_message(w, m);
  return w.take();
}

Result<SessionRecord> decode_session(std::string_view bytes) {
  // Version 1 (written before the connect epoch) still loads, with epoch 0.
  const bool v1 = !bytes.empty() && static_cast<std::uint8_t>(bytes[0]) == kSessionV1;
  auto result = decode_versioned<SessionRecord>(bytes, v1 ? kSessionV1 : kSessionV2, "session", [v1](Reader& r) {
    SessionRecord s;
    s.expiry_s = r.u32();
    s.disconnected_at_ms = r.i64();
    s.next_packet_id = r.u16();
    s.first_sequence = r.u64();
    s.subscriptions = read_subscriptions(r);
    s.will = read_will(r);
    if (!v1) s.connect_epoch = r.u64();
    return s;
  });
  if (result && result->will && !qos_ok(result->will->message.qos)) return corrupt("session");
  return result;
}

Result<QueuedRecord> decode_queued(std::string_view bytes) {
  // Version 1 (written before the message id) still loads, with id 0.
  const bool v1 = !bytes.empty() && static_cast<std::uint8_t>(bytes[0]) == kQueuedV1;
  auto result = decode_versioned<QueuedRecord>(bytes, v1 ? kQueuedV1 : kQueuedV2, "queued message", [v1](Reader& r) {
    QueuedRecord q = read_queued(r);
    if (!v1) read_id(r, q);
    return q;
  });
  if (result && (!qos_ok(result->qos) || !qos_ok(result->message.qos))) return corrupt("queued message");
  return result;
}

Result<InflightRecord> decode_inflight(std::string_view bytes) {
  // Version 1 (written before the message id) still loads, with id 0.
  const bool v1 = !bytes.empty() && static_cast<std::uint8_t>(bytes[0]) == kInflightV1;
  return decode_versioned<InflightRecord>(bytes, v1 ? kInflightV1 : kInflightV2, "in-flight message",
                                          [v1](Reader& r) {
                                            InflightRecord f;
                                            f.sequence = r.u64();
                                            f.released = r.flag();
                                            if (!v1) read_id(r, f);
                                            return f;
                                          });
}

Result<CopyRecord> decode_copy(std::string_view bytes) {
  // Version 1 (written before the will) still loads, without one.
  const bool v1 = !bytes.empty() && static_cast<std::uint8_t>(bytes[0]) == kCopyV1;
  auto result = decode_versioned<CopyRecord>(bytes, v1 ? kCopyV1 : kCopyV2, "session copy", [v1](Reader& r) {
    CopyRecord c;
    c.owner = r.bytes();
    c.generation = r.u64();
    const std::uint64_t n = r.length();
    for (std::uint64_t i = 0; i < n && !r.failed(); ++i) c.replicas.push_back(r.bytes());
    c.expiry_s = r.u32();
    c.connect_epoch = r.u64();
    c.first_sequence = r.u64();
    c.subscriptions = read_subscriptions(r);
    if (!v1) c.will = read_will(r);
    return c;
  });
  if (result && result->will && !qos_ok(result->will->message.qos)) return corrupt("session copy");
  return result;
}

Result<InboundRecord> decode_inbound(std::string_view bytes) {
  return decode_versioned<InboundRecord>(bytes, kInboundV1, "inbound QoS 2 id", [](Reader& r) {
    return InboundRecord{r.u64()};
  });
}

Result<StoredMessage> decode_message(std::string_view bytes) {
  auto result = decode_versioned<StoredMessage>(bytes, kMessageV1, "message", read_message);
  if (result && !qos_ok(result->qos)) return corrupt("message");
  return result;
}

}  // namespace starling::storage
