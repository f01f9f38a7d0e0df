#include "cluster/sessions/moved_sessions.h"

#include <gtest/gtest.h>

#include "broker/routing/forwarder.h"
#include "broker/routing/retained_store.h"
#include "broker/routing/router.h"
#include "tests/unit/cluster/cluster_test_support.h"

namespace starling::cluster {
namespace {

using mqtt::QoS;
using testing::NullListener;
using testing::numbered_message;

struct MovedFixture : ::testing::Test {
  broker::LocalOnly forwarder;
  broker::Router router{forwarder};
  broker::RetainedStore retained;
  broker::SessionRegistry sessions{router, retained, broker::QueueLimits{100, 1 << 20}};
  MovedSessions moved;

  static broker::SubscriptionRecord at(QoS qos, uint32_t id = 0) {
    return broker::SubscriptionRecord{mqtt::SubscriptionOptions{qos}, id};
  }
};

// A message a peer sent here after the session went to n3 goes there, as the
// session's subscriptions make it: one delivery, the highest QoS, every
// subscription id; not through a shared group's filter.
TEST_F(MovedFixture, AMessageForAMovedSessionFollowsIt) {
  moved.add("c", "n3", {{"a/#", at(QoS::k1)}, {"a/b", at(QoS::k2, 7)}, {"$share/g/x/#", at(QoS::k1)}});
  auto relays = moved.matching(numbered_message("a/b", QoS::k2, 1), "n2", {}, sessions);
  ASSERT_EQ(relays.size(), 1u);
  EXPECT_EQ(relays[0].node, "n3");
  EXPECT_EQ(relays[0].client_id, "c");
  EXPECT_EQ(relays[0].delivery.qos, QoS::k2);
  EXPECT_EQ(relays[0].delivery.subscription_ids, (std::vector<uint32_t>{7}));
  EXPECT_EQ(moved.matching(numbered_message("a/c", QoS::k2, 2), "n2", {"n4"}, sessions)[0].delivery.qos, QoS::k1);
  EXPECT_TRUE(moved.matching(numbered_message("x/y", QoS::k1, 3), "n2", {}, sessions).empty()) << "a shared group's";
  EXPECT_TRUE(moved.matching(numbered_message("b", QoS::k1, 4), "n2", {}, sessions).empty());
}

// The sender sent it to the session's new node too, or is that node (it
// delivered to its own sessions): nothing follows, nothing comes twice.
TEST_F(MovedFixture, NothingFollowsToANodeThatGotIt) {
  moved.add("c", "n3", {{"a/#", at(QoS::k1)}});
  EXPECT_TRUE(moved.matching(numbered_message("a/b", QoS::k1, 1), "n2", {"n3"}, sessions).empty());
  EXPECT_TRUE(moved.matching(numbered_message("a/b", QoS::k1, 2), "n3", {}, sessions).empty());
  EXPECT_EQ(moved.matching(numbered_message("a/b", QoS::k1, 3), "n2", {"n1"}, sessions).size(), 1u);
  EXPECT_TRUE(moved.any());
  // It came back here and is handed over again: held here until released,
  // its session takes what comes meanwhile along.
  moved.forget("c");
  EXPECT_FALSE(moved.any());
  EXPECT_TRUE(moved.matching(numbered_message("a/b", QoS::k1, 4), "n2", {}, sessions).empty());
}

// QoS 0, a message without an id (the node it goes to could not tell it
// from one it has), and a client whose session is here again: nothing.
TEST_F(MovedFixture, NothingFollowsWhatNeedNot) {
  moved.add("c", "n3", {{"a/#", at(QoS::k1)}});
  EXPECT_TRUE(moved.matching(numbered_message("a/b", QoS::k0, 1), "n2", {}, sessions).empty());
  EXPECT_TRUE(moved.matching(numbered_message("a/b", QoS::k1, 0), "n2", {}, sessions).empty());
  moved.add("d", "n3", {{"a/#", at(QoS::k0)}});
  EXPECT_EQ(moved.matching(numbered_message("a/b", QoS::k1, 2), "n2", {}, sessions).size(), 1u)
      << "d subscribed at QoS 0";
  auto s = std::make_shared<NullListener>();
  sessions.open("c", false, 600, s);
  EXPECT_TRUE(moved.matching(numbered_message("a/b", QoS::k1, 3), "n2", {}, sessions).empty()) << "c is back here";
}

}  // namespace
}  // namespace starling::cluster
