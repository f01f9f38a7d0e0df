// Persistent sessions through the store: what SessionRegistry writes, and
// what restore() makes of it after a restart, including what ended sessions
// left behind.
#include <gtest/gtest.h>

#include <algorithm>

#include <chrono>
#include <memory>

#include "broker/routing/forwarder.h"
#include "broker/routing/retained_store.h"
#include "broker/routing/router.h"
#include "broker/session/session_records.h"
#include "broker/session/session_registry.h"
#include "storage/group_commit.h"
#include "storage/records.h"
#include "storage/rocksdb_store.h"
#include "tests/support/temp_dir.h"

namespace starling::broker {
namespace {

using mqtt::QoS;
using std::chrono::hours;
using std::chrono::milliseconds;

class NullListener : public SessionListener {
 public:
  void wake() override {}
  void kick(mqtt::ReasonCode) override {}
  void room() override {}
};

// One node's broker state, as a restart makes it: a fresh router, registry
// and retained store on the same store.
struct Node {
  LocalOnly forwarder;
  Router router{forwarder};
  RetainedStore retained;
  SessionRegistry registry{router, retained, QueueLimits{100, 1 << 20}};
};

struct RecoveryTest : ::testing::Test {
  test::TempDir dir;
  std::unique_ptr<storage::RocksDbStore> store = std::move(storage::RocksDbStore::open(dir.path()).value());
  std::shared_ptr<NullListener> listener = std::make_shared<NullListener>();

  // Runs `body` on a node whose writes are committed when it returns.
  template <class F>
  void on_a_node(F body) {
    Node node;
    storage::GroupCommit commits(*store, storage::Fsync::never, milliseconds(1));
    node.registry.set_store(&commits);
    body(node);
  }  // ~GroupCommit commits what is pending

  static void subscribe(Node& node, const std::shared_ptr<Session>& s, const std::string& filter, QoS qos) {
    SubscriptionEntry e;
    e.options.qos = qos;
    s->add_subscription(filter, SubscriptionRecord{e.options, 0});
    node.router.subscribe(s, filter, e);
    node.registry.write_session(s, nullptr, {}, nullptr);
  }
  // A restart: `node` loads the store (which must load).
  SessionRegistry::Restored restore(Node& node) {
    auto restored = node.registry.restore(*store, ClockPair{});
    EXPECT_TRUE(restored) << restored.error().message;
    return restored ? *restored : SessionRegistry::Restored{};
  }
  static MessagePtr message(std::string topic, QoS qos = QoS::k1) {
    return make_message(std::move(topic), "payload", qos, false, {}, 0, nullptr, Clock::now());
  }
  // For copies of a session "c" that node n1 owns, subscribed to t/#.
  static MessagePtr copied_message(uint64_t serial, QoS qos = QoS::k1) {
    auto m = std::const_pointer_cast<Message>(make_message("t/x", "p", qos, false, {}, 0, nullptr, Clock::now()));
    m->id = MessageId{1, 2, serial};
    return m;
  }
  static SessionRegistry::ReplicaTerms copy_terms() {
    SessionRegistry::ReplicaTerms terms;
    terms.owner = "n1";
    terms.generation = 5;
    terms.expiry_interval = 600;
    terms.connect_epoch = 100;
    terms.subscriptions = {{"t/#", SubscriptionRecord{mqtt::SubscriptionOptions{QoS::k2}, 0}}};
    terms.replicas = {"n2", "n3"};
    return terms;
  }
  static std::vector<uint64_t> serials(const std::vector<Delivery>& ds) {
    std::vector<uint64_t> out;
    for (const auto& d : ds) out.push_back(d.message->id.serial);
    return out;
  }
  // The records in the store, the format version's aside.
  size_t stored_records() {
    size_t records = 0;
    for (auto column : storage::all_columns) {
      EXPECT_TRUE(store->scan_prefix(column, "", [&](std::string_view key, std::string_view) {
        records += key != storage::format_version_key;
        return true;
      }));
    }
    return records;
  }
};

TEST_F(RecoveryTest, PersistentSessionsComeBackOfflineSubscribedAndQueued) {
  on_a_node([&](Node& node) {
    auto kept = node.registry.open("kept", true, 600, listener).session;
    auto clean = node.registry.open("clean", true, 0, std::make_shared<NullListener>()).session;
    EXPECT_TRUE(kept->persistent());
    EXPECT_FALSE(clean->persistent());
    subscribe(node, kept, "a/#", QoS::k2);
    subscribe(node, clean, "a/#", QoS::k2);
    ASSERT_TRUE(kept->detach(listener.get()));
    node.registry.closed(kept, std::nullopt, Clock::now());
    node.registry.publish_internal(message("a/1"), Clock::now());
    node.registry.publish_internal(message("a/2", QoS::k0), Clock::now());  // QoS 0: never stored
  });

  Node after;
  const auto restored = restore(after);
  EXPECT_EQ(restored.sessions, 1u);
  EXPECT_EQ(restored.queued, 1u);
  EXPECT_EQ(restored.dropped, 0u);
  EXPECT_EQ(after.router.subscription_count(), 1u);
  auto opened = after.registry.open("kept", false, 600, listener);
  ASSERT_TRUE(opened.present);
  EXPECT_EQ(opened.session->queued_count(), 1u);
  EXPECT_EQ(opened.session->subscriptions().count("a/#"), 1u);
  EXPECT_FALSE(after.registry.open("clean", false, 0, std::make_shared<NullListener>()).present);
}

// A session keeps the epoch of the CONNECT that last opened it across a
// restart. A node back from being down asks its peers about its offline
// sessions, and drops those a peer has a newer copy of: their routes and
// records go, and a restart does not bring them back.
TEST_F(RecoveryTest, AnOutdatedRestoredSessionCanBeDroppedForGood) {
  on_a_node([&](Node& node) {
    for (const char* id : {"moved", "stays"}) {
      auto s = node.registry.open(id, true, 600, listener).session;
      s->set_connect_epoch(77);
      subscribe(node, s, std::string(id) + "/#", QoS::k1);
      ASSERT_TRUE(s->detach(listener.get()));
      node.registry.closed(s, std::nullopt, Clock::now());
    }
  });
  on_a_node([&](Node& node) {
    restore(node);
    auto offline = node.registry.offline_epochs();
    std::sort(offline.begin(), offline.end());
    EXPECT_EQ(offline, (std::vector<std::pair<std::string, uint64_t>>{{"moved", 77}, {"stays", 77}}));
    EXPECT_EQ(node.registry.connect_epoch_of("moved"), 77u);
    EXPECT_EQ(node.registry.connect_epoch_of("nobody"), std::nullopt);
    auto opened = node.registry.open("stays", false, 600, listener);  // its client is back
    EXPECT_EQ(node.registry.offline_epochs().size(), 1u);
    EXPECT_FALSE(node.registry.drop_stale("stays", 77)) << "online";
    EXPECT_FALSE(node.registry.drop_stale("moved", 76)) << "another epoch: a CONNECT opened it meanwhile";
    EXPECT_TRUE(node.registry.drop_stale("moved", 77));
    EXPECT_EQ(node.router.subscription_count(), 1u);
  });
  Node after;
  EXPECT_EQ(restore(after).sessions, 1u) << "the dropped copy's records are gone";
}

TEST_F(RecoveryTest, WhatAnEndedSessionWroteLateIsDroppedAndNewRangesStartAboveIt) {
  const uint64_t old_epoch = uint64_t{5} << 32;
  const uint64_t epoch = uint64_t{9} << 32;
  storage::WriteBatch b;
  storage::SessionRecord r;
  r.expiry_s = 600;
  r.first_sequence = old_epoch;
  b.put(storage::Column::sessions, storage::session_key("c", old_epoch), storage::encode(r));
  r.first_sequence = epoch;
  b.put(storage::Column::sessions, storage::session_key("c", epoch), storage::encode(r));
  storage::QueuedRecord q;
  q.message.topic = "t";
  q.message.qos = 1;
  q.qos = 1;
  b.put(storage::Column::queue, storage::queue_key("c", old_epoch + 3), storage::encode(q));  // the old session's
  b.put(storage::Column::queue, storage::queue_key("c", epoch + 1), storage::encode(q));
  b.put(storage::Column::queue, storage::queue_key("gone", 77), storage::encode(q));  // no session at all
  b.put(storage::Column::inbound_qos2, storage::packet_key("c", 5), storage::encode(storage::InboundRecord{old_epoch}));
  b.put(storage::Column::inbound_qos2, storage::packet_key("c", 6), storage::encode(storage::InboundRecord{epoch}));
  ASSERT_TRUE(store->write(b));

  Node node;
  const auto restored = restore(node);
  EXPECT_EQ(restored.sessions, 1u);
  EXPECT_EQ(restored.queued, 1u);
  EXPECT_EQ(restored.dropped, 4u);  // old record, two queue entries, one inbound id
  auto opened = node.registry.open("c", false, 600, listener);
  ASSERT_TRUE(opened.present);
  EXPECT_EQ(opened.session->first_sequence(), epoch);
  EXPECT_EQ(opened.session->inbound_qos2_count(), 1u);
  EXPECT_EQ(opened.session->begin_inbound_qos2(6, 100), Session::Inbound::kDuplicate);

  // Dropped from the disk too: a second start finds nothing stale.
  Node again;
  EXPECT_EQ(restore(again).dropped, 0u);

  // A new session of any client starts above every number seen.
  storage::GroupCommit commits(*store, storage::Fsync::never, milliseconds(1));
  again.registry.set_store(&commits);
  auto fresh = again.registry.open("other", true, 600, std::make_shared<NullListener>()).session;
  EXPECT_GT(fresh->first_sequence(), epoch + 1);
}

TEST_F(RecoveryTest, SessionsThatExpiredWhileTheNodeWasDownEndAndTheirWillsGoOut) {
  const auto wall = std::chrono::system_clock::now();
  auto ms = [](std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
  };
  storage::WriteBatch b;
  storage::SessionRecord watcher;
  watcher.expiry_s = UINT32_MAX;
  watcher.first_sequence = uint64_t{1} << 32;
  watcher.subscriptions.push_back({"will/#", 1, 0});
  b.put(storage::Column::sessions, storage::session_key("watcher", watcher.first_sequence), storage::encode(watcher));
  storage::SessionRecord dead;
  dead.expiry_s = 3600;
  dead.disconnected_at_ms = ms(wall - hours(2));
  dead.first_sequence = uint64_t{2} << 32;
  storage::StoredMessage will;
  will.topic = "will/dead";
  will.payload = "gone";
  will.qos = 1;
  dead.will = storage::StoredWill{will, 0};
  b.put(storage::Column::sessions, storage::session_key("dead", dead.first_sequence), storage::encode(dead));
  ASSERT_TRUE(store->write(b));

  Node node;
  const auto restored = restore(node);
  EXPECT_EQ(restored.sessions, 1u);
  EXPECT_EQ(restored.expired, 1u);
  auto w = node.registry.open("watcher", false, UINT32_MAX, listener);
  ASSERT_TRUE(w.present);
  EXPECT_EQ(w.session->queued_count(), 1u);  // the will
  EXPECT_FALSE(node.registry.open("dead", false, 3600, std::make_shared<NullListener>()).present);
}

// A copy of another node's session is stored on its node too. After a
// restart it is dormant (not routed, not a current copy) until it is
// promoted, with what was queued for it, the owner's QoS 2 packet ids and
// the client's inbound QoS 2 packet ids awaiting PUBREL.
TEST_F(RecoveryTest, ACopyComesBackDormantAndCanBecomeTheSession) {
  const auto delivery = [&](uint64_t serial, QoS qos = QoS::k1) {
    Delivery d;
    d.message = copied_message(serial, qos);
    d.qos = qos;
    return d;
  };
  on_a_node([&](Node& node) {
    node.registry.replica_open("c", copy_terms());
    const uint16_t awaiting_pubrel[] = {5};
    node.registry.replica_fill("c", "n1", {}, {delivery(1), delivery(2, QoS::k2), delivery(3, QoS::k2)},
                               awaiting_pubrel);
    const uint32_t inbound[] = {7, 8, 5 + 0x10000};
    node.registry.replica_inbound("c", "n1", inbound);
    node.registry.replica_released("c", "n1", MessageId{1, 2, 2}, 42);
    node.registry.replica_sent("c", "n1", MessageId{1, 2, 3}, 43);
    const MessageId done[] = {MessageId{1, 2, 1}};
    node.registry.replica_forget("c", "n1", done);
    bool stored = false;
    node.registry.deliver_forwarded(copied_message(4), {}, [&](bool ok) { stored = ok; });
    EXPECT_EQ(node.registry.replica_queue("c", "n1").size(), 2u) << "3 and 4 (2 is released)";
  });
  on_a_node([&](Node& node) {
    const auto restored = restore(node);
    EXPECT_EQ(restored.copies, 1u);
    EXPECT_EQ(restored.sessions, 0u);
    EXPECT_EQ(node.registry.find("c"), nullptr) << "not a session of this node's";
    EXPECT_FALSE(node.registry.replica_of("c")) << "not a current copy";
    auto dormant = node.registry.dormant_of("c");
    ASSERT_TRUE(dormant);
    EXPECT_EQ(dormant->owner, "n1");
    EXPECT_EQ(dormant->replicas, (std::vector<std::string>{"n2", "n3"}));
    EXPECT_EQ(node.router.subscription_count(), 0u) << "not routed";
    // Its owner and every other copy are gone: it becomes this node's
    // session, with the owner's packet ids.
    ASSERT_TRUE(node.registry.promote_dormant("c", 200));
    EXPECT_FALSE(node.registry.dormant_of("c"));
    auto session = node.registry.find("c");
    ASSERT_NE(session, nullptr);
    EXPECT_EQ(session->connect_epoch(), 200u);
    EXPECT_EQ(node.router.subscription_count(), 1u);
    EXPECT_EQ(session->released_ids(), (std::vector<uint16_t>{42}));
    const auto inflight = session->inflight_snapshot();
    ASSERT_EQ(inflight.size(), 2u);
    EXPECT_EQ(inflight[1].packet_id, 43);
    EXPECT_EQ(serials(session->queued_snapshot()), (std::vector<uint64_t>{4}));
    EXPECT_EQ(session->inbound_qos2_snapshot(), (std::vector<uint16_t>{7, 8}));
  });
  Node after;
  const auto restored = restore(after);
  EXPECT_EQ(restored.copies, 0u) << "the promoted copy's records are gone";
  EXPECT_EQ(restored.sessions, 1u);
  EXPECT_EQ(restored.queued, 3u) << "the session has 2, 3 and 4";
  ASSERT_NE(after.registry.find("c"), nullptr);
  EXPECT_EQ(after.registry.find("c")->inbound_qos2_snapshot(), (std::vector<uint16_t>{7, 8}));
}

// A copy keeps the client's will on disk: a copy read back after a restart
// and promoted (its owner died with the client's connection) publishes it;
// not one dropped since (a normal DISCONNECT).
TEST_F(RecoveryTest, ACopyReadBackPublishesTheWillItKept) {
  on_a_node([&](Node& node) {
    auto terms = copy_terms();
    terms.will = WillRecord{message("will/c"), 0};
    node.registry.replica_open("c", terms);
    node.registry.replica_open("d", terms);
    node.registry.replica_will("d", "n1", std::nullopt);
  });
  on_a_node([&](Node& node) {
    EXPECT_EQ(restore(node).copies, 2u);
    auto watch = node.registry.open("watcher", true, 0, listener).session;
    SubscriptionEntry e;
    e.options.qos = QoS::k1;
    node.router.subscribe(watch, "will/#", e);
    ASSERT_TRUE(node.registry.promote_dormant("d", 200));
    EXPECT_EQ(watch->queued_count(), 0u) << "the client had disconnected normally";
    ASSERT_TRUE(node.registry.promote_dormant("c", 201));
    ASSERT_EQ(watch->queued_count(), 1u);
    EXPECT_EQ(watch->queued_snapshot()[0].message->topic, "will/c");
  });
}

// The owner opening its copy again replaces what was read back: the owner's
// fill says what is still wanted (its client may have had the rest).
TEST_F(RecoveryTest, TheOwnersOpenReplacesADormantCopy) {
  on_a_node([&](Node& node) {
    node.registry.replica_open("c", copy_terms());
    node.registry.deliver_forwarded(copied_message(1), {}, [](bool) {});
  });
  on_a_node([&](Node& node) {
    EXPECT_EQ(restore(node).copies, 1u);
    node.registry.replica_open("c", copy_terms());
    EXPECT_FALSE(node.registry.dormant_of("c"));
    ASSERT_TRUE(node.registry.replica_of("c"));
    EXPECT_EQ(node.router.subscription_count(), 1u);
    EXPECT_TRUE(node.registry.replica_queue("c", "n1").empty());
    node.registry.deliver_forwarded(copied_message(2), {}, [](bool) {});
  });
  on_a_node([&](Node& node) {
    const auto restored = restore(node);
    EXPECT_EQ(restored.copies, 1u);
    EXPECT_EQ(restored.queued, 1u) << "2 only: 1 went with the copy the owner replaced";
    // A dormant copy dropped (a member has the session) leaves nothing.
    node.registry.drop_dormant("c");
  });
  Node node;
  EXPECT_EQ(restore(node).copies, 0u);
  EXPECT_EQ(stored_records(), 0u);
}

// A copy its owner drops leaves nothing on disk.
TEST_F(RecoveryTest, ADroppedCopyLeavesNothingBehind) {
  on_a_node([&](Node& node) {
    node.registry.replica_open("c", copy_terms());
    node.registry.deliver_forwarded(copied_message(1), {}, [](bool) {});
    node.registry.replica_drop("c", "n1");
  });
  Node node;
  const auto restored = restore(node);
  EXPECT_EQ(restored.copies, 0u);
  EXPECT_EQ(restored.queued, 0u);
  EXPECT_EQ(stored_records(), 0u);
}

TEST_F(RecoveryTest, ADamagedRecordStopsTheLoad) {
  ASSERT_TRUE(store->put(storage::Column::sessions, storage::session_key("c", uint64_t{1} << 32), "\x01garbage"));
  Node node;
  auto restored = node.registry.restore(*store, ClockPair{});
  ASSERT_FALSE(restored);
  EXPECT_EQ(restored.error().code, storage::StoreErrc::corruption);
  EXPECT_NE(restored.error().message.find("'c'"), std::string::npos) << restored.error().message;
}

}  // namespace
}  // namespace starling::broker
