#include "storage/records.h"

#include <string>

#include <gtest/gtest.h>

namespace starling::storage {
namespace {

StoredMessage sample_message() {
  StoredMessage m;
  m.topic = "sensors/7/temp";
  m.payload = std::string("21.5\0bytes", 10);  // binary, with a NUL
  m.qos = 2;
  m.retain = true;
  m.properties = std::string("\x01\x01\x03\x00\x04text", 9);
  m.expires_at_ms = 1'800'000'000'123;
  return m;
}

QueuedRecord sample_queued() {
  QueuedRecord q;
  q.message = sample_message();
  q.qos = 1;
  q.retain = false;
  q.subscription_ids = {7, 268'435'455};
  q.id_origin = 0xfedcba9876543210ull;
  q.id_publisher = 42;
  q.id_serial = 7;
  return q;
}

SessionRecord sample_session() {
  SessionRecord s;
  s.expiry_s = 3600;
  s.disconnected_at_ms = 1'700'000'000'000;
  s.next_packet_id = 65535;
  s.first_sequence = (1ull << 40) + 5;
  s.subscriptions = {{"a/+/c", 0x21, 0}, {"$share/g/x/#", 0x02, 42}};
  s.will = StoredWill{sample_message(), 30};
  return s;
}

TEST(Records, SessionRoundTrips) {
  const SessionRecord s = sample_session();
  auto back = decode_session(encode(s));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, s);

  SessionRecord bare;  // no subscriptions, no will
  auto bare_back = decode_session(encode(bare));
  ASSERT_TRUE(bare_back);
  EXPECT_EQ(*bare_back, bare);
}

// Version 2 added the connect epoch at the end; a version 1 record (from a
// data directory written before) loads with epoch 0.
TEST(Records, SessionVersion1StillLoads) {
  SessionRecord s = sample_session();
  s.connect_epoch = 0x1234;
  std::string bytes = encode(s);
  ASSERT_EQ(bytes[0], 2);
  auto back = decode_session(bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->connect_epoch, 0x1234u);
  std::string v1 = bytes.substr(0, bytes.size() - 8);
  v1[0] = 1;
  auto old = decode_session(v1);
  ASSERT_TRUE(old) << old.error().message;
  s.connect_epoch = 0;
  EXPECT_EQ(*old, s);
  EXPECT_FALSE(decode_session(bytes.substr(0, bytes.size() - 8))) << "a version 2 record cut short";
}

// A queued message keeps its id (version 2); one written before still loads.
TEST(Records, QueuedVersion1StillLoads) {
  std::string bytes = encode(sample_queued());
  ASSERT_EQ(bytes[0], 2);
  std::string v1 = bytes.substr(0, bytes.size() - 24);
  v1[0] = 1;
  auto old = decode_queued(v1);
  ASSERT_TRUE(old) << old.error().message;
  QueuedRecord expected = sample_queued();
  expected.id_origin = expected.id_publisher = expected.id_serial = 0;
  EXPECT_EQ(*old, expected);
  EXPECT_FALSE(decode_queued(bytes.substr(0, bytes.size() - 8))) << "a version 2 record cut short";
}

TEST(Records, InflightVersion1StillLoadsAndVersion2NamesTheMessage) {
  InflightRecord copy;
  copy.released = true;
  copy.id_origin = 7;
  copy.id_publisher = 8;
  copy.id_serial = 9;
  const std::string bytes = encode(copy);
  auto back = decode_inflight(bytes);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, copy);
  std::string v1 = encode(InflightRecord{42, true}).substr(0, 10);
  v1[0] = 1;
  auto old = decode_inflight(v1);
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(*old, (InflightRecord{42, true}));
  EXPECT_FALSE(decode_inflight(bytes.substr(0, 10))) << "a version 2 record cut short";
}

// A node's copy of another node's session: whose it is and its terms, in the
// cluster column; its other records under an id no client can have.
TEST(Records, CopyRoundTripsAndIsKeptApartFromTheClientsOwn) {
  CopyRecord c;
  c.owner = "n1";
  c.generation = 12;
  c.replicas = {"n2", "n3"};
  c.expiry_s = 600;
  c.connect_epoch = 1ull << 40;
  c.first_sequence = 3ull << 32;
  c.subscriptions = {{"a/#", 1, 0}, {"b", 2, 7}};
  auto back = decode_copy(encode(c));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, c);
  const std::string bytes = encode(c);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(decode_copy(std::string_view(bytes).substr(0, n))) << n;
  }
  // Version 1, written before the will, loads without one.
  std::string v1 = bytes.substr(0, bytes.size() - 1);  // no will: its flag is the last byte
  v1[0] = 1;
  auto old = decode_copy(v1);
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(*old, c);
  // With the client's will.
  c.will = StoredWill{StoredMessage{}, 30};
  c.will->message.topic = "will/c";
  c.will->message.payload = "gone";
  c.will->message.qos = 1;
  back = decode_copy(encode(c));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, c);
  EXPECT_EQ(copy_key("abc"), "copies/abc");
  const std::string id = copy_store_id("abc");
  EXPECT_EQ(copied_client_id(id), "abc");
  EXPECT_EQ(copied_client_id("abc"), std::nullopt);
  EXPECT_FALSE(client_prefix(id).starts_with(client_prefix("abc")));
  EXPECT_NE(queue_key(id, 1), queue_key("abc", 1));
}

TEST(Records, InboundRoundTrips) {
  auto back = decode_inbound(encode(InboundRecord{1ull << 32}));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->first_sequence, 1ull << 32);
  EXPECT_EQ(decode_inbound("").error().code, StoreErrc::corruption);
}

TEST(Records, QueuedInflightAndRetainedRoundTrip) {
  auto q = decode_queued(encode(sample_queued()));
  ASSERT_TRUE(q) << q.error().message;
  EXPECT_EQ(*q, sample_queued());

  InflightRecord f{1234567890123ull, true};
  auto f_back = decode_inflight(encode(f));
  ASSERT_TRUE(f_back) << f_back.error().message;
  EXPECT_EQ(*f_back, f);

  auto m = decode_message(encode(sample_message()));
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(*m, sample_message());

  StoredMessage big = sample_message();
  big.payload.assign(300'000, 'x');  // a length of three LEB128 bytes
  auto big_back = decode_message(encode(big));
  ASSERT_TRUE(big_back);
  EXPECT_EQ(big_back->payload.size(), 300'000u);
}

TEST(Records, EveryTruncationIsCorruption) {
  const std::string bytes = encode(sample_session());
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = decode_session(std::string_view(bytes).substr(0, n));
    ASSERT_FALSE(r) << "accepted " << n << " of " << bytes.size() << " bytes";
    EXPECT_EQ(r.error().code, StoreErrc::corruption);
  }
}

TEST(Records, TrailingBytesAndBadFieldsAreCorruption) {
  EXPECT_EQ(decode_queued(encode(sample_queued()) + "x").error().code, StoreErrc::corruption);

  QueuedRecord bad_qos = sample_queued();
  bad_qos.qos = 3;
  EXPECT_EQ(decode_queued(encode(bad_qos)).error().code, StoreErrc::corruption);

  std::string bad_flag = encode(InflightRecord{7, true});
  bad_flag[9] = 2;  // the released flag, after the version and the sequence
  EXPECT_EQ(decode_inflight(bad_flag).error().code, StoreErrc::corruption);
}

TEST(Records, UnknownRecordVersionIsRefused) {
  std::string bytes = encode(sample_message());
  bytes[0] = 99;
  auto r = decode_message(bytes);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, StoreErrc::bad_format_version);
  EXPECT_NE(r.error().message.find("99"), std::string::npos);
}

TEST(Records, ClientKeysGroupAndOrder) {
  // One client's keys share its prefix, and no other client's do.
  EXPECT_TRUE(queue_key("a", 1).starts_with(client_prefix("a")));
  EXPECT_FALSE(queue_key("ab", 1).starts_with(client_prefix("a")));
  EXPECT_FALSE(session_key("ab", 1).starts_with(client_prefix("a")));
  EXPECT_LT(session_key("a", 1), session_key("a", 2));
  // Sequence numbers and packet ids sort numerically under bytewise order.
  EXPECT_LT(queue_key("c", 255), queue_key("c", 256));
  EXPECT_LT(queue_key("c", 1), queue_key("c", 1ull << 40));
  EXPECT_LT(packet_key("c", 255), packet_key("c", 256));
  // A client id with any bytes in it, and the empty one.
  const std::string odd("x\0/y\xff", 5);
  auto parsed = parse_queue_key(queue_key(odd, 1ull << 33));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->client_id, odd);
  EXPECT_EQ(parsed->number, 1ull << 33);
  auto packet = parse_packet_key(packet_key("", 65535));
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->client_id, "");
  EXPECT_EQ(packet->number, 65535u);
  auto session = parse_session_key(session_key(odd, 7));
  ASSERT_TRUE(session);
  EXPECT_EQ(session->client_id, odd);
  EXPECT_EQ(session->number, 7u);
}

TEST(Records, KeysOfAnotherShapeAreNotParsed) {
  EXPECT_FALSE(parse_queue_key(packet_key("c", 1)));
  EXPECT_FALSE(parse_packet_key(queue_key("c", 1)));
  EXPECT_FALSE(parse_session_key(packet_key("c", 1)));
  EXPECT_FALSE(parse_queue_key(std::string_view("\x00", 1)));
  EXPECT_FALSE(parse_session_key(std::string("\x00\x05" "abc", 5)));  // says 5 bytes, has 3
}

}  // namespace
}  // namespace starling::storage
