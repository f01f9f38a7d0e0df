// The session state machine: queueing, the in-flight window, QoS 1 and QoS 2
// outbound flows, inbound QoS 2 duplicates, redelivery order.
#include "broker/session/session.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>

namespace starling::broker {
namespace {

using mqtt::QoS;

MessagePtr message(std::string topic, std::optional<uint32_t> expiry = std::nullopt, Clock::time_point now = Clock::now()) {
  mqtt::Properties props;
  props.message_expiry_interval = expiry;
  return make_message(std::move(topic), "payload", QoS::k2, false, props, 0, nullptr, now);
}

Delivery delivery(QoS qos, std::string topic = "t", std::optional<uint32_t> expiry = std::nullopt) {
  Delivery d;
  d.message = message(std::move(topic), expiry);
  d.qos = qos;
  return d;
}

class CountingListener : public SessionListener {
 public:
  void wake() override { ++wakes; }
  void kick(mqtt::ReasonCode reason) override { kicked = reason; }
  void room() override { ++rooms; }
  std::atomic<int> wakes{0};
  std::atomic<int> rooms{0};
  std::optional<mqtt::ReasonCode> kicked;
};

struct Fixture : ::testing::Test {
  Session session{"client", 1, QueueLimits{10, 1 << 20}};
  std::shared_ptr<CountingListener> listener = std::make_shared<CountingListener>();
  std::vector<Session::Ready> ready;
  size_t expired = 0;
  std::vector<uint64_t> forget;  // stored deliveries dropped

  void take(size_t window) {
    ready.clear();
    session.take_ready(listener.get(), window, Clock::now(), ready, expired, forget);
  }
};

using SessionTest = Fixture;

TEST_F(SessionTest, Qos0ForAnOfflineSessionIsDropped) {
  EXPECT_EQ(session.enqueue(delivery(QoS::k0), Clock::now()), Session::Enqueued::kOfflineQos0);
  EXPECT_EQ(session.enqueue(delivery(QoS::k1), Clock::now()), Session::Enqueued::kQueued);
  EXPECT_EQ(session.queued_count(), 1u);
}

TEST_F(SessionTest, OneWakeUpPerBatch) {
  session.attach(listener);
  for (int i = 0; i < 5; ++i) session.enqueue(delivery(QoS::k1), Clock::now());
  EXPECT_EQ(listener->wakes, 1);
  take(100);
  session.enqueue(delivery(QoS::k1), Clock::now());
  EXPECT_EQ(listener->wakes, 2);
}

TEST_F(SessionTest, QueueLimitRefusesQos1AndDropsQos0) {
  session.attach(listener);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(session.enqueue(delivery(QoS::k1), Clock::now()), Session::Enqueued::kQueued);
  EXPECT_EQ(session.enqueue(delivery(QoS::k1), Clock::now()), Session::Enqueued::kQueueFull);
  EXPECT_EQ(session.enqueue(delivery(QoS::k0), Clock::now()), Session::Enqueued::kDroppedQos0);
}

// Slow-down: an online session queued to the mark is congested; a publisher
// waiting on it hears room() once it has drained to half the mark.
TEST_F(SessionTest, CongestedAtTheSlowDownMarkUntilHalfDrained) {
  Session s("c", 3, QueueLimits{100, 1 << 20, 4, 1 << 20});
  auto publisher = std::make_shared<CountingListener>();
  EXPECT_FALSE(s.wait_for_room(publisher));  // not congested: nothing to wait for
  s.attach(listener);
  for (int i = 0; i < 3; ++i) s.enqueue(delivery(QoS::k1), Clock::now());
  EXPECT_FALSE(s.congested());
  s.enqueue(delivery(QoS::k1), Clock::now());
  EXPECT_TRUE(s.congested());
  ASSERT_TRUE(s.wait_for_room(publisher));
  ready.clear();
  s.take_ready(listener.get(), 1, Clock::now(), ready, expired, forget);  // 3 left: above half the mark
  EXPECT_TRUE(s.congested());
  EXPECT_EQ(publisher->rooms, 0);
  ASSERT_TRUE(s.complete(ready[0].packet_id, QoS::k1));
  ready.clear();
  s.take_ready(listener.get(), 1, Clock::now(), ready, expired, forget);  // 2 left: half
  EXPECT_FALSE(s.congested());
  EXPECT_EQ(publisher->rooms, 1);
  EXPECT_FALSE(s.wait_for_room(publisher));
}

TEST_F(SessionTest, AnOfflineSessionSlowsNoOne) {
  Session s("c", 3, QueueLimits{100, 1 << 20, 2, 1 << 20});
  auto publisher = std::make_shared<CountingListener>();
  for (int i = 0; i < 5; ++i) s.enqueue(delivery(QoS::k1), Clock::now());
  EXPECT_FALSE(s.congested());  // offline: bounded by the hard limits only
  s.attach(listener);
  s.enqueue(delivery(QoS::k1), Clock::now());
  EXPECT_TRUE(s.congested());
  ASSERT_TRUE(s.wait_for_room(publisher));
  ASSERT_TRUE(s.detach(listener.get()));  // the subscriber went away
  EXPECT_EQ(publisher->rooms, 1);
  EXPECT_FALSE(s.congested());
}

TEST_F(SessionTest, QueueLimitCountsBytesToo) {
  // Each delivery costs 8 bytes: topic "t" and payload "payload".
  Session small("c", 2, QueueLimits{100, 50});
  small.attach(listener);
  for (int i = 0; i < 6; ++i) ASSERT_EQ(small.enqueue(delivery(QoS::k1), Clock::now()), Session::Enqueued::kQueued);
  EXPECT_EQ(small.enqueue(delivery(QoS::k1), Clock::now()), Session::Enqueued::kQueueFull);
  EXPECT_EQ(small.enqueue(delivery(QoS::k0), Clock::now()), Session::Enqueued::kDroppedQos0);
  // Sending frees the bytes; what waits for the window keeps counting.
  ready.clear();
  small.take_ready(listener.get(), 2, Clock::now(), ready, expired, forget);
  ASSERT_EQ(ready.size(), 2u);
  EXPECT_EQ(small.enqueue(delivery(QoS::k1), Clock::now()), Session::Enqueued::kQueued);
  EXPECT_EQ(small.enqueue(delivery(QoS::k1), Clock::now()), Session::Enqueued::kQueued);
  EXPECT_EQ(small.enqueue(delivery(QoS::k1), Clock::now()), Session::Enqueued::kQueueFull);
}

TEST_F(SessionTest, TakeReadyStopsAtTheByteBudgetAndTheRestStaysQueued) {
  // Each delivery costs 8 bytes; a budget of 20 takes three (at least one, and
  // until the budget is reached), and what is left still counts as queued.
  session.attach(listener);
  for (int i = 0; i < 5; ++i) session.enqueue(delivery(QoS::k0), Clock::now());
  ready.clear();
  session.take_ready(listener.get(), 10, Clock::now(), ready, expired, forget, 20);
  EXPECT_EQ(ready.size(), 3u);
  EXPECT_EQ(session.queued_count(), 2u);
  ready.clear();
  session.take_ready(listener.get(), 10, Clock::now(), ready, expired, forget, 1);
  EXPECT_EQ(ready.size(), 1u);  // always at least one
  EXPECT_EQ(session.queued_count(), 1u);
}

TEST_F(SessionTest, InflightWindowLimitsQos1And2ButNotQos0) {
  session.attach(listener);
  for (QoS q : {QoS::k1, QoS::k2, QoS::k0, QoS::k1, QoS::k0}) session.enqueue(delivery(q), Clock::now());
  take(2);
  // QoS 1 and QoS 2 fill the window; the QoS 0 behind them still goes (it needs
  // no slot), the next QoS 1 waits, and so does everything after it: order holds.
  ASSERT_EQ(ready.size(), 3u);
  EXPECT_EQ(ready[0].packet_id, 1);
  EXPECT_EQ(ready[1].packet_id, 2);
  EXPECT_EQ(ready[2].packet_id, 0);
  EXPECT_EQ(session.inflight_count(), 2u);
  EXPECT_EQ(session.queued_count(), 2u);
  take(2);
  EXPECT_TRUE(ready.empty());
  EXPECT_TRUE(session.complete(1, QoS::k1));
  take(2);
  ASSERT_EQ(ready.size(), 2u);  // the QoS 1 in the freed slot, then the QoS 0
  EXPECT_EQ(ready[0].packet_id, 3);
  EXPECT_EQ(ready[1].packet_id, 0);
}

TEST_F(SessionTest, Qos2NeedsPubrecBeforePubcomp) {
  session.attach(listener);
  session.enqueue(delivery(QoS::k2), Clock::now());
  take(10);
  ASSERT_EQ(ready.size(), 1u);
  const uint16_t id = ready[0].packet_id;
  EXPECT_FALSE(session.complete(id, QoS::k2));  // PUBCOMP before PUBREC
  EXPECT_FALSE(session.complete(id, QoS::k1));  // wrong flow
  EXPECT_TRUE(session.release(id));
  auto snapshot = session.inflight_snapshot();
  ASSERT_EQ(snapshot.size(), 1u);
  EXPECT_TRUE(snapshot[0].released);  // a resumed session resends PUBREL, not PUBLISH
  EXPECT_TRUE(session.complete(id, QoS::k2));
  EXPECT_EQ(session.inflight_count(), 0u);
  EXPECT_FALSE(session.release(id));
}

TEST_F(SessionTest, RedeliveryKeepsSendOrder) {
  session.attach(listener);
  for (int i = 0; i < 4; ++i) session.enqueue(delivery(QoS::k1, "t" + std::to_string(i)), Clock::now());
  take(10);
  ASSERT_TRUE(session.complete(2, QoS::k1));
  auto snapshot = session.inflight_snapshot();
  ASSERT_EQ(snapshot.size(), 3u);
  EXPECT_EQ(snapshot[0].delivery.message->topic, "t0");
  EXPECT_EQ(snapshot[1].delivery.message->topic, "t2");
  EXPECT_EQ(snapshot[2].delivery.message->topic, "t3");
}

TEST_F(SessionTest, ResumedSessionResendsInOrderWithinTheNewWindow) {
  session.attach(listener);
  for (int i = 0; i < 4; ++i) session.enqueue(delivery(QoS::k2, "t" + std::to_string(i)), Clock::now());
  take(10);
  ASSERT_EQ(ready.size(), 4u);
  ASSERT_TRUE(session.release(1));  // PUBREC for the first
  // The client reconnects with Receive Maximum 2.
  auto second = std::make_shared<CountingListener>();
  EXPECT_EQ(session.attach(second), listener);  // the old connection is handed back, to be kicked
  ready.clear();
  session.take_ready(listener.get(), 10, Clock::now(), ready, expired, forget);
  EXPECT_TRUE(ready.empty());  // a replaced connection sends nothing
  EXPECT_EQ(session.released_ids(), std::vector<uint16_t>{1});  // PUBREL again, counts as unacknowledged
  session.take_ready(second.get(), 2, Clock::now(), ready, expired, forget);
  ASSERT_EQ(ready.size(), 1u);  // 1 released + 1 resent = the window of 2
  EXPECT_EQ(ready[0].packet_id, 2);
  EXPECT_TRUE(ready[0].dup);
  ASSERT_TRUE(session.release(2));
  ASSERT_TRUE(session.complete(1, QoS::k2));
  ready.clear();
  session.take_ready(second.get(), 2, Clock::now(), ready, expired, forget);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].packet_id, 3);
  EXPECT_TRUE(ready[0].dup);
}

TEST_F(SessionTest, PacketIdsSkipThoseInUseAndWrap) {
  session.attach(listener);
  // Cycle through the whole id space twice with one message kept in flight.
  session.enqueue(delivery(QoS::k1), Clock::now());
  take(100);
  const uint16_t held = ready[0].packet_id;
  for (int i = 0; i < 70000; ++i) {
    session.enqueue(delivery(QoS::k1), Clock::now());
    take(100);
    ASSERT_EQ(ready.size(), 1u);
    ASSERT_NE(ready[0].packet_id, 0);
    ASSERT_NE(ready[0].packet_id, held);
    ASSERT_TRUE(session.complete(ready[0].packet_id, QoS::k1));
  }
}

// A persistent session's QoS 1/2 deliveries are numbered from its range, and
// each goes out under the packet id its number gives; one whose id is still
// in use waits in the queue.
TEST(PersistentSession, StoredDeliveriesKeepThePacketIdOfTheirSequence) {
  const uint64_t first = uint64_t{3} << 32;
  Session s("p", 1, QueueLimits{10, 1 << 20}, first);
  auto listener = std::make_shared<CountingListener>();
  s.attach(listener);
  Delivery qos0 = delivery(QoS::k0);
  EXPECT_FALSE(s.assign_sequence(qos0));
  Delivery a = delivery(QoS::k1, "a");
  ASSERT_TRUE(s.assign_sequence(a));
  EXPECT_EQ(a.sequence, first);
  Session plain("q", 2, QueueLimits{10, 1 << 20});
  Delivery not_stored = delivery(QoS::k1);
  EXPECT_FALSE(plain.assign_sequence(not_stored));

  // A delivery 65535 numbers later shares a's packet id.
  Delivery later = delivery(QoS::k2, "later");
  later.sequence = first + 65535;
  ASSERT_EQ(Session::packet_id_of(later.sequence), Session::packet_id_of(a.sequence));
  s.enqueue(std::move(a), Clock::now());
  s.enqueue(std::move(later), Clock::now());
  std::vector<Session::Ready> ready;
  size_t expired = 0;
  std::vector<uint64_t> forget;
  s.take_ready(listener.get(), 10, Clock::now(), ready, expired, forget);
  ASSERT_EQ(ready.size(), 1u);  // "later" waits for the id
  EXPECT_EQ(ready[0].packet_id, Session::packet_id_of(first));
  const auto done = s.complete(ready[0].packet_id, QoS::k1);
  EXPECT_TRUE(done);
  EXPECT_EQ(done.sequence, first);
  ready.clear();
  s.take_ready(listener.get(), 10, Clock::now(), ready, expired, forget);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].delivery.message->topic, "later");
  EXPECT_EQ(ready[0].packet_id, Session::packet_id_of(first));
}

TEST(PersistentSession, RestoredDeliveriesGoAgainWithDupAndReleasedOnesWithTheirPubrel) {
  const uint64_t first = uint64_t{1} << 32;
  Session s("p", 1, QueueLimits{10, 1 << 20}, first);
  for (uint64_t n : {first + 4, first + 5}) {
    Delivery d = delivery(n == first + 4 ? QoS::k2 : QoS::k1, "t" + std::to_string(n - first));
    d.sequence = n;
    d.dup = true;
    s.restore_queued(std::move(d));
  }
  EXPECT_TRUE(s.restore_released(first + 4));
  EXPECT_FALSE(s.restore_released(first + 5));  // QoS 1 has no release
  EXPECT_FALSE(s.restore_released(first + 9));  // not queued
  auto listener = std::make_shared<CountingListener>();
  s.attach(listener);
  EXPECT_EQ(s.released_ids(), std::vector<uint16_t>{Session::packet_id_of(first + 4)});
  std::vector<Session::Ready> ready;
  size_t expired = 0;
  std::vector<uint64_t> forget;
  s.take_ready(listener.get(), 10, Clock::now(), ready, expired, forget);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].delivery.message->topic, "t5");
  EXPECT_EQ(ready[0].packet_id, Session::packet_id_of(first + 5));
  EXPECT_TRUE(ready[0].dup);
  // A new delivery numbers on after the restored ones.
  Delivery next = delivery(QoS::k1);
  ASSERT_TRUE(s.assign_sequence(next));
  EXPECT_EQ(next.sequence, first + 6);
}

TEST(PersistentSession, ExpiredStoredDeliveriesAreReportedForErasure) {
  const auto start = Clock::now();
  Session s("p", 1, QueueLimits{10, 1 << 20}, uint64_t{1} << 32);
  auto listener = std::make_shared<CountingListener>();
  s.attach(listener);
  Delivery d;
  d.message = message("t", 1, start);
  d.qos = QoS::k1;
  ASSERT_TRUE(s.assign_sequence(d));
  const uint64_t n = d.sequence;
  s.enqueue(std::move(d), start);
  std::vector<Session::Ready> ready;
  size_t expired = 0;
  std::vector<uint64_t> forget;
  s.take_ready(listener.get(), 10, start + std::chrono::seconds(2), ready, expired, forget);
  EXPECT_TRUE(ready.empty());
  EXPECT_EQ(expired, 1u);
  EXPECT_EQ(forget, std::vector<uint64_t>{n});
}

// trim() frees only what is empty: queued and in-flight messages stay, and
// packet ids go on from where they were (none reused while in flight).
TEST_F(SessionTest, TrimKeepsWhatIsQueuedOrInFlight) {
  session.attach(listener);
  for (QoS q : {QoS::k1, QoS::k1, QoS::k2}) session.enqueue(delivery(q), Clock::now());
  take(1);
  ASSERT_EQ(ready.size(), 1u);
  session.trim();
  EXPECT_EQ(session.inflight_count(), 1u);
  EXPECT_EQ(session.queued_count(), 2u);
  EXPECT_TRUE(session.complete(1, QoS::k1));
  take(10);
  ASSERT_EQ(ready.size(), 2u);
  EXPECT_EQ(ready[0].packet_id, 2);
  EXPECT_EQ(ready[1].packet_id, 3);
  EXPECT_TRUE(session.release(3));
  EXPECT_TRUE(session.complete(2, QoS::k1));
  session.trim();  // one QoS 2 still awaiting PUBCOMP: kept
  EXPECT_EQ(session.released_ids(), std::vector<uint16_t>{3});
  EXPECT_TRUE(session.complete(3, QoS::k2));
  session.trim();  // all empty: freed
  EXPECT_EQ(session.inflight_count(), 0u);
  EXPECT_EQ(session.queued_count(), 0u);
  EXPECT_FALSE(session.complete(3, QoS::k2));
  session.enqueue(delivery(QoS::k1), Clock::now());
  take(10);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].packet_id, 4);  // ids go on after a trim
}

TEST_F(SessionTest, ExpiredMessagesAreNotSent) {
  session.attach(listener);
  const auto now = Clock::now();
  Delivery d;
  d.message = message("t", 1, now - std::chrono::seconds(5));
  d.qos = QoS::k1;
  EXPECT_EQ(session.enqueue(std::move(d), now), Session::Enqueued::kExpired);
  Delivery live;
  live.message = message("live", 60, now);
  live.qos = QoS::k1;
  session.enqueue(std::move(live), now);
  take(10);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].delivery.message->topic, "live");
  EXPECT_EQ(*ready[0].delivery.message->remaining_expiry(now), 60u);
}

TEST_F(SessionTest, InboundQos2DuplicatesAreDetected) {
  using In = Session::Inbound;
  EXPECT_EQ(session.begin_inbound_qos2(7, 2), In::kNew);
  EXPECT_EQ(session.begin_inbound_qos2(7, 2), In::kDuplicate);  // DUP retransmission: not delivered again
  EXPECT_EQ(session.inbound_qos2_count(), 1u);
  EXPECT_EQ(session.begin_inbound_qos2(8, 2), In::kNew);
  EXPECT_EQ(session.begin_inbound_qos2(9, 2), In::kOverLimit);  // Receive Maximum 2
  EXPECT_EQ(session.begin_inbound_qos2(8, 2), In::kDuplicate);  // a retransmission at the limit is fine
  EXPECT_TRUE(session.end_inbound_qos2(7));
  EXPECT_FALSE(session.end_inbound_qos2(7));
  EXPECT_EQ(session.begin_inbound_qos2(7, 2), In::kNew);  // a new message may reuse the id
}

TEST_F(SessionTest, DetachDropsQueuedQos0AndOnlyTheCurrentListenerDetaches) {
  session.attach(listener);
  session.enqueue(delivery(QoS::k0), Clock::now());
  session.enqueue(delivery(QoS::k1), Clock::now());
  auto other = std::make_shared<CountingListener>();
  EXPECT_FALSE(session.detach(other.get()));
  EXPECT_TRUE(session.online());
  EXPECT_TRUE(session.detach(listener.get()));
  EXPECT_FALSE(session.online());
  EXPECT_EQ(session.queued_count(), 1u);
  EXPECT_TRUE(session.disconnected_at().has_value());
}

// A session moving between nodes: the old node's tail goes between what was
// handed over and what came to the new node directly; a message that came
// both ways is kept once, and a late copy is not queued again.
TEST(SessionTail, SplicedBetweenHandedAndDirectOnce) {
  Session session{"client", 1, QueueLimits{10, 1 << 20}, /*first_sequence=*/Session::kSequenceRange};
  const auto with_id = [](std::string topic, uint64_t serial) {
    Delivery d;
    d.message = make_message(std::move(topic), "p", QoS::k1, false, {}, 0, nullptr, Clock::now(),
                             MessageId{42, 3, serial});
    d.qos = QoS::k1;
    return d;
  };
  session.restore_queued(delivery(QoS::k1, "handed"));
  Delivery both = with_id("both", 1);
  Delivery direct = with_id("direct", 2);
  ASSERT_TRUE(session.assign_sequence(both));
  ASSERT_TRUE(session.assign_sequence(direct));
  const uint64_t both_sequence = both.sequence;
  const uint64_t direct_sequence = direct.sequence;
  ASSERT_EQ(session.enqueue(std::move(both), Clock::now()), Session::Enqueued::kQueued);
  ASSERT_EQ(session.enqueue(std::move(direct), Clock::now()), Session::Enqueued::kQueued);

  std::vector<Delivery> tail;
  tail.push_back(with_id("tail", 5));
  tail.push_back(with_id("both", 1));
  auto spliced = session.splice_tail(std::move(tail), /*handed=*/1, Clock::now());
  EXPECT_EQ(spliced.duplicates, 1u);
  EXPECT_EQ(spliced.forget, (std::vector<uint64_t>{both_sequence, direct_sequence}));
  ASSERT_EQ(spliced.stored.size(), 3u) << "tail, tail, direct: numbered anew, in order";
  EXPECT_LT(spliced.stored[0].sequence, spliced.stored[1].sequence);
  EXPECT_LT(spliced.stored[1].sequence, spliced.stored[2].sequence);
  EXPECT_GT(spliced.stored[0].sequence, direct_sequence);

  auto listener = std::make_shared<CountingListener>();
  session.attach(listener);
  std::vector<Session::Ready> ready;
  size_t expired = 0;
  std::vector<uint64_t> forget;
  session.take_ready(listener.get(), 10, Clock::now(), ready, expired, forget);
  std::vector<std::string> topics;
  for (const auto& r : ready) topics.push_back(r.delivery.message->topic);
  EXPECT_EQ(topics, (std::vector<std::string>{"handed", "tail", "both", "direct"}));

  EXPECT_EQ(session.enqueue(with_id("tail", 5), Clock::now()), Session::Enqueued::kDuplicate)
      << "a late copy of a tail message";
  EXPECT_EQ(session.enqueue(with_id("new", 6), Clock::now()), Session::Enqueued::kQueued);
  EXPECT_EQ(session.enqueue(delivery(QoS::k1, "no id"), Clock::now()), Session::Enqueued::kQueued);
}

TEST(SessionTail, TakeAllLeavesOnlyWhatComesAfter) {
  Session session{"client", 1, QueueLimits{10, 1 << 20}};
  ASSERT_EQ(session.enqueue(delivery(QoS::k1, "before"), Clock::now()), Session::Enqueued::kQueued);
  auto taken = session.take_all();
  ASSERT_EQ(taken.queued.size(), 1u);
  EXPECT_EQ(session.queued_count(), 0u);
  ASSERT_EQ(session.enqueue(delivery(QoS::k1, "after"), Clock::now()), Session::Enqueued::kQueued);
  taken = session.take_all();
  ASSERT_EQ(taken.queued.size(), 1u);
  EXPECT_EQ(taken.queued[0].message->topic, "after");
}

}  // namespace
}  // namespace starling::broker

namespace starling::broker {
namespace {

// A session handed over by another node keeps its deliveries' packet ids.
TEST(AdoptedSession, InFlightDeliveriesKeepTheirPacketIds) {
  Session session{"client", 1, QueueLimits{10, 1 << 20}, /*first_sequence=*/Session::kSequenceRange};
  auto listener = std::make_shared<CountingListener>();
  session.attach(listener);
  Delivery sent = delivery(QoS::k2, "sent");
  Delivery released = delivery(QoS::k2, "released");
  ASSERT_TRUE(session.assign_sequence_for(sent, 40000));
  ASSERT_TRUE(session.assign_sequence_for(released, 7));
  EXPECT_EQ(Session::packet_id_of(sent.sequence), 40000);
  EXPECT_EQ(Session::packet_id_of(released.sequence), 7);
  EXPECT_LT(sent.sequence, released.sequence) << "stored in the order they came";
  session.restore_inflight(std::move(sent), 40000, false);
  session.restore_inflight(std::move(released), 7, true);
  Delivery queued = delivery(QoS::k1, "queued");
  ASSERT_TRUE(session.assign_sequence(queued));
  session.restore_queued(std::move(queued));

  std::vector<Session::Ready> ready;
  size_t expired = 0;
  std::vector<uint64_t> forget;
  session.take_ready(listener.get(), 10, Clock::now(), ready, expired, forget);
  ASSERT_EQ(ready.size(), 2u) << "the unreleased one again, then the queue";
  EXPECT_EQ(ready[0].packet_id, 40000);
  EXPECT_TRUE(ready[0].dup);
  EXPECT_EQ(ready[1].delivery.message->topic, "queued");
  EXPECT_NE(ready[1].packet_id, 7) << "an id in flight is not reused";
  EXPECT_EQ(session.released_ids(), std::vector<uint16_t>{7}) << "its PUBREL goes again";
}

}  // namespace
}  // namespace starling::broker
