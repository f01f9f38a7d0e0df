// Review findings in the session registry and the router: interleavings that
// two workers can produce, replayed in order on one thread.
#include <gtest/gtest.h>

#include <thread>

#include "broker/routing/forwarder.h"
#include "broker/routing/retained_store.h"
#include "broker/routing/router.h"
#include "broker/session/session_registry.h"
#include "broker/session/session_replication.h"

namespace starling::broker {
namespace {

using mqtt::QoS;

class NullListener : public SessionListener {
 public:
  void wake() override {}
  void kick(mqtt::ReasonCode) override {}
  void room() override {}
};

struct RegistryFixture : ::testing::Test {
  LocalOnly forwarder;
  Router router{forwarder};
  RetainedStore retained;
  SessionRegistry registry{router, retained, QueueLimits{100, 1 << 20}};
  std::shared_ptr<NullListener> a = std::make_shared<NullListener>();
  std::shared_ptr<NullListener> b = std::make_shared<NullListener>();
  std::shared_ptr<NullListener> w = std::make_shared<NullListener>();

  std::shared_ptr<Session> watcher() {
    auto s = registry.open("watcher", true, 600, w).session;
    SubscriptionEntry e;
    e.options.qos = QoS::k1;
    router.subscribe(s, "will/#", e);
    s->add_subscription("will/#", SubscriptionRecord{e.options, 0});
    return s;
  }
  // A persistent session of `client_id` subscribed to "t" at QoS 1.
  std::shared_ptr<Session> subscribed(const std::string& client_id, std::shared_ptr<NullListener> listener) {
    auto s = registry.open(client_id, false, 600, listener).session;
    SubscriptionEntry e;
    e.options.qos = QoS::k1;
    s->add_subscription("t", SubscriptionRecord{e.options, 0});
    router.subscribe(s, "t", e);
    return s;
  }
  // A delivery of message 1:2:`serial` on "t".
  static Delivery numbered(uint64_t serial, QoS qos) {
    Delivery d;
    d.message = make_message("t", "p", qos, false, {}, 0, nullptr, Clock::now(), MessageId{1, 2, serial});
    d.qos = qos;
    return d;
  }
  // A copy here of n1's session of "c", subscribed to "t" at QoS 2.
  SessionRegistry::ReplicaTerms copy_of_c() {
    SessionRegistry::ReplicaTerms terms;
    terms.owner = "n1";
    terms.expiry_interval = 600;
    terms.subscriptions = {{"t", SubscriptionRecord{mqtt::SubscriptionOptions{QoS::k2}, 0}}};
    registry.replica_open("c", terms);
    return terms;
  }
  MessagePtr will_message(SessionId owner) {
    return make_message("will/x", "gone", QoS::k1, false, {}, owner, nullptr, Clock::now());
  }
};

// Connection::close() on worker 1 detaches and then calls
// SessionRegistry::closed(); a reconnect (clean start 0) on worker 2 can run
// open() in between. The delayed will that closed() brings must then be
// dropped, not stored for the sweep to publish while the client is connected
// again [MQTT-3.1.3-9].
TEST_F(RegistryFixture, DelayedWillNotPublishedAfterResumeBetweenDetachAndClosed) {
  auto watch = watcher();
  const auto now = Clock::now();
  auto s = registry.open("c", true, 600, a).session;
  s->set_expiry_interval(600);
  ASSERT_TRUE(s->detach(a.get()));                      // worker 1: close(), detach
  auto resumed = registry.open("c", false, 600, b);          // worker 2: CONNECT, resume
  ASSERT_TRUE(resumed.present);
  resumed.session->set_expiry_interval(600);
  registry.closed(s, WillMessage{will_message(s->id()), now + std::chrono::seconds(1), now}, now);  // worker 1
  registry.sweep(now + std::chrono::seconds(5));
  EXPECT_EQ(watch->queued_count(), 0u) << "will published while the session is connected again";
}

// A clean-start takeover removes the old session's subscriptions from the
// router right after open(); the old connection (kicked, not yet closed) can
// still be handling a SUBSCRIBE on the old session. The router must refuse
// it: nothing would ever remove it, and the orphan session would queue QoS
// 1/2 messages forever.
TEST_F(RegistryFixture, CleanStartTakeoverLeavesNoOrphanSubscription) {
  auto old = registry.open("c", true, 600, a).session;
  auto fresh = registry.open("c", true, 600, b).session;     // worker 2: takeover, clean start
  SubscriptionEntry e;
  e.options.qos = QoS::k1;
  router.subscribe(old, "t", e);                         // worker 1: SUBSCRIBE still in progress
  old->add_subscription("t", SubscriptionRecord{e.options, 0});
  EXPECT_FALSE(old->detach(a.get()));                    // worker 1: the kick arrives, close()
  // (closed() is not called when detach fails.)
  EXPECT_EQ(router.subscription_count(), 0u) << "orphan subscription of an ended session";
}

// A session with expiry 0 ends with its connection; a new connection that
// replaces it (its DISCONNECT still being handled on another worker) gets a
// new session, not that one.
TEST_F(RegistryFixture, SessionWithExpiryZeroIsNeverResumed) {
  auto first = registry.open("z", true, 0, a);
  auto second = registry.open("z", false, 600, b);
  EXPECT_FALSE(second.present);
  EXPECT_NE(first.session, second.session);
  EXPECT_TRUE(first.session->ended());
}

// The sweep ends sessions whose expiry passed while they had no connection;
// one that was resumed meanwhile, or never lost its connection, stays.
TEST_F(RegistryFixture, SweepEndsExpiredOfflineSessionsOnly) {
  using std::chrono::seconds;
  auto gone = registry.open("gone", true, 1, a).session;
  auto back = registry.open("back", true, 1, b).session;
  auto stays = registry.open("stays", true, 1, w).session;
  const auto now = Clock::now();
  ASSERT_TRUE(gone->detach(a.get()));
  registry.closed(gone, std::nullopt, now);
  ASSERT_TRUE(back->detach(b.get()));
  registry.closed(back, std::nullopt, now);
  auto again = std::make_shared<NullListener>();
  ASSERT_TRUE(registry.open("back", false, 1, again).present);
  registry.sweep(now + seconds(5));
  EXPECT_TRUE(gone->ended());
  EXPECT_FALSE(back->ended());
  EXPECT_FALSE(stays->ended());
  EXPECT_EQ(registry.size(), 2u);
  // Its connection lost again, the resumed session expires in its turn.
  ASSERT_TRUE(back->detach(again.get()));
  registry.closed(back, std::nullopt, now + seconds(5));
  registry.sweep(now + seconds(10));
  EXPECT_TRUE(back->ended());
  EXPECT_FALSE(stays->ended());
  EXPECT_EQ(registry.size(), 1u);
}

// A session handed to another node stays subscribed here, queuing, until
// that node releases it: what it queued meanwhile goes with the release,
// once, and its routes go then. Unreleased, it ends after kReleaseWait.
TEST_F(RegistryFixture, HeldHandOverQueuesUntilReleased) {
  subscribed("c", a);
  const auto publish = [&](std::string topic) {
    auto route = router.route(make_message(std::move(topic), "p", QoS::k1, false, {}, 0, nullptr, Clock::now()));
    router.deliver(route, Clock::now());
  };
  publish("t");
  auto handed = registry.hand_over("c", false, /*key=*/7);
  ASSERT_TRUE(handed && handed->resumed && handed->held);
  EXPECT_EQ(handed->deliveries.size(), 1u);
  EXPECT_EQ(registry.find("c"), nullptr) << "no longer this node's session";
  publish("t");  // before the other node's routes are known everywhere
  EXPECT_FALSE(registry.release("c", 8)) << "another takeover's key";
  auto tail = registry.release("c", 7);
  ASSERT_TRUE(tail);
  ASSERT_EQ(tail->size(), 1u);
  EXPECT_EQ(router.subscription_count(), 0u) << "its routes go with the release";
  EXPECT_FALSE(registry.release("c", 7)) << "released once";

  subscribed("d", b);
  ASSERT_TRUE(registry.hand_over("d", false, 9)->held);
  registry.sweep(Clock::now() + SessionRegistry::kReleaseWait + std::chrono::seconds(1));
  EXPECT_EQ(router.subscription_count(), 0u) << "never released: it ends";
  EXPECT_FALSE(registry.release("d", 9));
  EXPECT_FALSE(registry.hand_over("e", false, 10)) << "no session";
}

// Releasing in two steps: routes first, the queue a moment later, so a
// message routed just before the routes went (and queued just after) is in
// the tail, not stranded in a session nobody holds.
TEST_F(RegistryFixture, ReleaseTakesWhatWasRoutedBeforeTheRoutesWent) {
  subscribed("c", a);
  ASSERT_TRUE(registry.hand_over("c", false, 7)->held);
  auto route = router.route(make_message("t", "p", QoS::k1, false, {}, 0, nullptr, Clock::now()));
  EXPECT_EQ(registry.unroute_held("c", 8), nullptr);
  auto held = registry.unroute_held("c", 7);
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(router.subscription_count(), 0u);
  EXPECT_TRUE(held->routes_under_way()) << "the release waits for this one";
  router.deliver(route, Clock::now());  // the worker that routed it goes on
  EXPECT_FALSE(held->routes_under_way());
  auto tail = registry.release("c", 7);
  ASSERT_TRUE(tail);
  EXPECT_EQ(tail->size(), 1u);
}

// A route given up without delivering (a full queue elsewhere) counts as
// ended too, or a release would wait for it in vain.
TEST_F(RegistryFixture, ARouteDroppedUndeliveredIsNoLongerUnderWay) {
  auto s = subscribed("c", a);
  {
    auto route = router.route(make_message("t", "p", QoS::k1, false, {}, 0, nullptr, Clock::now()));
    EXPECT_TRUE(s->routes_under_way());
    auto moved = std::move(route);  // a Route moves with its count
    EXPECT_TRUE(s->routes_under_way());
  }
  EXPECT_FALSE(s->routes_under_way());
}

// What the client completed on the node it came from, that node's copies
// may hear of late: the session handed here takes those ids along, and the
// copy here passes on what it was told is done (a forward that arrives
// after its forget), so neither comes back from the copy or a late forward.
TEST_F(RegistryFixture, WhatTheClientCompletedElsewhereIsNotQueuedAgain) {
  const auto terms = copy_of_c();
  // The copy has 1 (completed on n1, its forget not here yet) and 2; it was
  // told 5 is done before 5 itself arrived.
  registry.replica_fill("c", "n1", {}, {numbered(1, QoS::k2), numbered(2, QoS::k2)});
  const MessageId five{1, 2, 5};
  registry.replica_forget("c", "n1", {&five, 1});

  auto opened = registry.open("c", false, 600, a);
  HandedSession handed;
  handed.resumed = true;
  handed.subscriptions = terms.subscriptions;
  handed.completed = {MessageId{1, 2, 1}};
  storage::WriteBatch batch;
  registry.adopt(opened.session, std::move(handed), batch);
  registry.absorb_replica(opened.session, /*discard=*/false, batch);
  std::vector<uint64_t> serials;
  for (const auto& d : opened.session->queued_snapshot()) serials.push_back(d.message->id.serial);
  EXPECT_EQ(serials, (std::vector<uint64_t>{2})) << "1 was completed on n1";

  registry.deliver_forwarded(numbered(5, QoS::k2).message, {}, [](bool) {});
  registry.deliver_forwarded(numbered(6, QoS::k2).message, {}, [](bool) {});
  serials.clear();
  for (const auto& d : opened.session->queued_snapshot()) serials.push_back(d.message->id.serial);
  EXPECT_EQ(serials, (std::vector<uint64_t>{2, 6})) << "5 reached the copy's node after its forget";
}

// The last delivery completed is handed over with the session: its worker
// may not have told the copies yet.
TEST_F(RegistryFixture, AHandedSessionBringsItsLastCompletion) {
  auto s = subscribed("c", a);
  router.publish(make_message("t", "p", QoS::k1, false, {}, 0, nullptr, Clock::now(), MessageId{1, 2, 3}),
                 Clock::now());
  std::vector<Session::Ready> ready;
  size_t expired = 0;
  std::vector<uint64_t> forget;
  s->take_ready(a.get(), 10, Clock::now(), ready, expired, forget);
  ASSERT_EQ(ready.size(), 1u);
  ASSERT_TRUE(s->complete(ready[0].packet_id, QoS::k1));
  auto handed = registry.hand_over("c", false, 7);
  ASSERT_TRUE(handed);
  EXPECT_EQ(handed->completed, (std::vector<MessageId>{MessageId{1, 2, 3}}));
}

// A delivery stored between routing and queuing that the session then
// refuses (a late copy of a message its tail brought) is reported, so that
// its record is erased and a restart does not send it again.
TEST_F(RegistryFixture, AStoredDeliveryNotQueuedIsReportedForErasing) {
  auto s = subscribed("c", a);
  auto message = make_message("t", "p", QoS::k1, false, {}, 0, nullptr, Clock::now(), MessageId{1, 2, 3});
  auto route = router.route(message);
  ASSERT_EQ(route.deliveries.size(), 1u);
  route.deliveries[0].second.sequence = 77;  // as put_queued would have stored it
  Delivery copy;
  copy.message = message;
  copy.qos = QoS::k1;
  std::vector<Delivery> tail;
  tail.push_back(copy);
  s->splice_tail(std::move(tail), 0, Clock::now());
  const auto result = router.deliver(route, Clock::now());
  EXPECT_EQ(result.deliveries, 0u);
  ASSERT_EQ(result.unqueued.size(), 1u);
  EXPECT_EQ(result.unqueued[0].first, s);
  EXPECT_EQ(result.unqueued[0].second, 77u);
  EXPECT_EQ(s->queued_count(), 1u) << "the tail's copy only";
}


// A copy of another node's session: subscribed here (so what matches is
// queued here too), dropped by what its owner says the client has, never
// a session of this node's, and updated only by its owner.
TEST_F(RegistryFixture, AReplicaQueuesWhatItsOwnerHasNotSaidIsDone) {
  const auto message = [&](uint64_t serial) {
    auto m = std::const_pointer_cast<Message>(make_message("t/x", "p", QoS::k1, false, {}, 0, nullptr, Clock::now()));
    m->id = MessageId{1, 2, serial};
    return MessagePtr(m);
  };
  const auto publish = [&](const MessagePtr& m) {
    auto route = router.route(m);
    router.deliver(route, Clock::now());
  };
  SessionRegistry::ReplicaTerms terms;
  terms.owner = "n1";
  terms.generation = 5;
  terms.expiry_interval = 600;
  terms.connect_epoch = 100;
  terms.subscriptions = {{"t/#", SubscriptionRecord{mqtt::SubscriptionOptions{QoS::k1}, 0}},
                         {"$share/g/t/#", SubscriptionRecord{mqtt::SubscriptionOptions{QoS::k1}, 0}}};
  terms.replicas = {"n2"};
  EXPECT_TRUE(registry.replica_open("c", terms).routes_added);
  EXPECT_EQ(router.subscription_count(), 1u) << "not the shared one: a group gets a message once";
  EXPECT_EQ(registry.find("c"), nullptr) << "not a session of this node's";
  EXPECT_EQ(registry.replica_count(), 1u);
  ASSERT_TRUE(registry.replica_of("c"));
  EXPECT_EQ(registry.replica_of("c")->owner, "n1");

  publish(message(1));
  publish(message(2));
  const auto delivery = [&](uint64_t serial) {
    Delivery d;
    d.message = message(serial);
    d.qos = QoS::k1;
    return d;
  };
  registry.replica_fill("c", "n1", {}, {delivery(2), delivery(3)});
  const MessageId done[] = {MessageId{1, 2, 1}, MessageId{1, 2, 4}};
  registry.replica_forget("c", "n1", done);
  registry.replica_forget("c", "n9", std::span<const MessageId>(done).subspan(0, 0));
  publish(message(4));  // came late, after the owner said it was done with it
  registry.replica_drop("c", "n9");  // not the owner: ignored
  EXPECT_EQ(registry.replica_count(), 1u);

  // The owner is gone: the copy becomes this node's session, with 2 and 3.
  ASSERT_TRUE(registry.promote("c", 200));
  EXPECT_EQ(registry.replica_count(), 0u);
  auto session = registry.find("c");
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(session->connect_epoch(), 200u);
  EXPECT_EQ(session->expiry_interval(), 600u);
  EXPECT_EQ(router.subscription_count(), 2u)
      << "the session's own routes replaced the copy's, the shared one (which the copy kept) with them";
  std::vector<uint64_t> serials;
  for (const auto& d : session->queued_snapshot()) serials.push_back(d.message->id.serial);
  EXPECT_EQ(serials, (std::vector<uint64_t>{2, 3}));
  publish(message(5));
  EXPECT_EQ(session->queued_count(), 4u) << "still subscribed: once through t/#, once through the group";
  EXPECT_FALSE(registry.promote("c", 300)) << "no copy left";
}

// A QoS 2 delivery whose PUBREC the owner reported goes out again as a
// PUBREL under the same packet id, never as a new PUBLISH; one it reported
// sent goes again under its id.
TEST_F(RegistryFixture, APromotedReplicaKeepsQos2PacketIds) {
  copy_of_c();
  registry.replica_fill("c", "n1", {}, {numbered(3, QoS::k2)});
  registry.replica_released("c", "n1", MessageId{1, 2, 3}, 42);
  // Another one sent under 43, not yet PUBREC'd: again under 43, as a PUBLISH.
  registry.replica_fill("c", "n1", {}, {numbered(4, QoS::k2)});
  registry.replica_sent("c", "n1", MessageId{1, 2, 4}, 43);
  ASSERT_TRUE(registry.promote("c", 1));
  auto session = registry.find("c");
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(session->released_ids(), (std::vector<uint16_t>{42}));
  const auto inflight = session->inflight_snapshot();
  ASSERT_EQ(inflight.size(), 2u);
  EXPECT_EQ(inflight[1].packet_id, 43);
  EXPECT_FALSE(inflight[1].released);
  EXPECT_EQ(session->queued_count(), 0u);
}

// A worker matched a message to the copy and queues it a moment later (it
// was preempted): the copy becoming the session, or going into a session a
// client opened here, waits for it, so it is not left behind in the copy.
TEST_F(RegistryFixture, APromotionTakesWhatWasRoutedToTheCopyBeforeItsRoutesWent) {
  copy_of_c();
  auto route = router.route(numbered(7, QoS::k1).message);
  std::thread promoting([&] { EXPECT_TRUE(registry.promote("c", 1)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  router.deliver(route, Clock::now());  // the worker that routed it goes on
  promoting.join();
  auto session = registry.find("c");
  ASSERT_NE(session, nullptr);
  EXPECT_EQ(session->queued_count(), 1u);
}

TEST_F(RegistryFixture, AnAbsorbedCopyBringsWhatWasRoutedToItBeforeItsRoutesWent) {
  copy_of_c();
  auto route = router.route(numbered(7, QoS::k1).message);
  auto opened = registry.open("c", false, 600, a);
  storage::WriteBatch batch;
  std::thread absorbing([&] { EXPECT_EQ(registry.absorb_replica(opened.session, false, batch), 1u); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  router.deliver(route, Clock::now());
  absorbing.join();
  EXPECT_EQ(opened.session->queued_count(), 1u);
}

// The owner died with the client's connection: the copy's will goes out
// when the copy becomes the session, at once without a delay; with one, the
// sweep publishes it unless the client is back first. A copy told the will
// is gone (a normal DISCONNECT) publishes nothing.
TEST_F(RegistryFixture, APromotedCopyPublishesTheWillItKept) {
  auto watch = watcher();
  auto terms = copy_of_c();
  terms.will = WillRecord{will_message(0), 0};
  registry.replica_open("c", terms);
  ASSERT_TRUE(registry.promote("c", 1));
  EXPECT_EQ(watch->queued_count(), 1u) << "no delay: published at once";

  terms.will = WillRecord{will_message(0), 5};
  registry.replica_open("d", terms);
  ASSERT_TRUE(registry.promote("d", 2));
  EXPECT_EQ(watch->queued_count(), 1u) << "waits for its delay";
  registry.sweep(Clock::now() + std::chrono::seconds(6));
  EXPECT_EQ(watch->queued_count(), 2u);

  terms.will = WillRecord{will_message(0), 0};
  registry.replica_open("e", terms);
  registry.replica_will("e", "n1", std::nullopt);
  ASSERT_TRUE(registry.promote("e", 3));
  registry.sweep(Clock::now() + std::chrono::seconds(6));
  EXPECT_EQ(watch->queued_count(), 2u) << "the client had disconnected normally";
}

// The client connects where a copy of its session is (its owner is gone or
// handed the session over): what the copy has that the session lacks comes
// along, each message once, and not what the client released already.
TEST_F(RegistryFixture, AConnectHereAbsorbsTheCopy) {
  copy_of_c();
  registry.replica_fill("c", "n1", {}, {numbered(1, QoS::k1), numbered(2, QoS::k1), numbered(3, QoS::k2)});
  registry.replica_released("c", "n1", MessageId{1, 2, 3}, 9);
  auto opened = registry.open("c", false, 600, a);
  opened.session->restore_queued(numbered(1, QoS::k1));  // handed over by the owner
  storage::WriteBatch batch;
  registry.absorb_replica(opened.session, /*discard=*/false, batch);
  std::vector<uint64_t> serials;
  for (const auto& d : opened.session->queued_snapshot()) serials.push_back(d.message->id.serial);
  EXPECT_EQ(serials, (std::vector<uint64_t>{1, 2})) << "1 once; 3 was released: its PUBREL is the owner's";
  EXPECT_EQ(registry.replica_count(), 0u);
  EXPECT_EQ(registry.merge_from_replica("c", {numbered(2, QoS::k1), numbered(4, QoS::k1)}), 1u);
  EXPECT_EQ(opened.session->queued_count(), 3u);
}

// An owner's copy never replaces a newer session: one a client opened here
// since (connected), or another owner's copy opened later.
TEST_F(RegistryFixture, AnOlderOwnersCopyIsRefused) {
  SessionRegistry::ReplicaTerms older;
  older.owner = "n1";
  older.expiry_interval = 600;
  older.connect_epoch = 100;
  auto newer = older;
  newer.owner = "n3";
  newer.connect_epoch = 200;
  registry.replica_open("c", newer);
  EXPECT_TRUE(registry.replica_open("c", older).refused);
  EXPECT_EQ(registry.replica_of("c")->owner, "n3");
  // A client connecting here makes the session this node's: the copy goes.
  auto opened = registry.open("c", false, 600, a);
  storage::WriteBatch batch;
  registry.absorb_replica(opened.session, false, batch);
  EXPECT_EQ(registry.replica_count(), 0u);
  EXPECT_TRUE(registry.replica_open("c", newer).refused) << "the client is connected here";
}

// Replication that knows of completions its copies have not confirmed.
class UnconfirmedCompletions final : public SessionReplication {
 public:
  explicit UnconfirmedCompletions(std::vector<MessageId> ids) : ids_(std::move(ids)) {}
  void recorded(const std::shared_ptr<Session>&, Done done) override { done(true); }
  void released(const Session&, const MessageId&, uint16_t, Done done) override { done(true); }
  void sent(const Session&, const MessageId&, uint16_t) override {}
  void completed(const Session&, const MessageId&) override {}
  std::vector<MessageId> unconfirmed_completions(const Session&) const override { return ids_; }
  void inbound_qos2(const Session&, uint16_t, bool, Done done) override {
    if (done) done(true);
  }
  void will_changed(const Session&) override {}
  void queued(const Session&, const Delivery&, Done done) override { done(true); }

 private:
  std::vector<MessageId> ids_;
};

// A copy that missed a completion (its node was cut off) sends its queue
// back: the message the client completed here is not queued again.
TEST_F(RegistryFixture, ACopySentBackDoesNotBringBackWhatTheClientCompleted) {
  UnconfirmedCompletions replication{{MessageId{1, 2, 1}}};
  registry.set_replication(&replication);
  auto s = subscribed("c", a);
  std::vector<Delivery> back;
  back.push_back(numbered(1, QoS::k2));
  back.push_back(numbered(2, QoS::k2));
  EXPECT_EQ(registry.merge_from_replica("c", std::move(back)), 1u);
  const auto queued = s->queued_snapshot();
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_EQ(queued[0].message->id.serial, 2u);
  registry.set_replication(nullptr);
}

}  // namespace
}  // namespace starling::broker
