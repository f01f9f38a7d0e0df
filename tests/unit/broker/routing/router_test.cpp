// The router: fan-out, merging overlapping subscriptions, and refusing a QoS
// 1/2 message as a whole when one subscriber has no room.
#include "broker/routing/router.h"

#include <gtest/gtest.h>

namespace starling::broker {
namespace {

using mqtt::QoS;

class Listener : public SessionListener {
 public:
  void wake() override {}
  void kick(mqtt::ReasonCode) override {}
  void room() override {}
};

struct RouterTest : ::testing::Test {
  LocalOnly forwarder;
  Router router{forwarder};
  std::shared_ptr<Listener> listener = std::make_shared<Listener>();

  std::shared_ptr<Session> session(SessionId id, size_t max_queued, const std::string& filter, QoS qos) {
    auto s = std::make_shared<Session>("c" + std::to_string(id), id, QueueLimits{max_queued, 1 << 20});
    s->attach(listener);
    SubscriptionEntry e;
    e.options.qos = qos;
    s->add_subscription(filter, SubscriptionRecord{e.options, 0});
    router.subscribe(s, filter, e);
    return s;
  }
  MessagePtr message(QoS qos) { return make_message("a/b", "x", qos, false, {}, 0, nullptr, Clock::now()); }
};

TEST_F(RouterTest, FullQueueRefusesTheMessageForEverySubscriber) {
  auto small = session(1, 2, "a/#", QoS::k1);
  auto large = session(2, 100, "a/b", QoS::k2);
  for (int i = 0; i < 2; ++i) {
    auto r = router.publish(message(QoS::k1), Clock::now());
    EXPECT_FALSE(r.quota_exceeded);
    EXPECT_EQ(r.deliveries, 2u);
  }
  auto refused = router.publish(message(QoS::k1), Clock::now());
  EXPECT_TRUE(refused.quota_exceeded);
  EXPECT_EQ(refused.deliveries, 0u);
  EXPECT_EQ(small->queued_count(), 2u);
  EXPECT_EQ(large->queued_count(), 2u);  // not 3: no subscriber got the refused message
}

TEST_F(RouterTest, QoS0IsNeverRefusedOnlyDroppedWhereFull) {
  auto small = session(1, 1, "a/#", QoS::k1);
  auto large = session(2, 100, "a/b", QoS::k1);
  router.publish(message(QoS::k0), Clock::now());
  auto r = router.publish(message(QoS::k0), Clock::now());
  EXPECT_FALSE(r.quota_exceeded);
  EXPECT_EQ(r.deliveries, 1u);
  EXPECT_EQ(r.dropped(), 1u);
  EXPECT_EQ(large->queued_count(), 2u);
}

TEST_F(RouterTest, SharedAndPlainSubscriptionOfOneClientEachGiveACopy) {
  // MQTT 5 4.8.2: a copy for the plain subscription, and one for the shared
  // group, whose pick is this client. Two plain ones still make one copy.
  auto s = session(1, 100, "a/#", QoS::k1);
  SubscriptionEntry e;
  e.options.qos = QoS::k1;
  for (const std::string filter : {"$share/g/a/b", "a/+"}) {
    s->add_subscription(filter, SubscriptionRecord{e.options, 0});
    router.subscribe(s, filter, e);
  }
  auto r = router.publish(message(QoS::k1), Clock::now());
  EXPECT_EQ(r.deliveries, 2u);
  EXPECT_EQ(s->queued_count(), 2u);
  EXPECT_EQ(router.shared_group_count(), 1u);
  EXPECT_EQ(router.sessions_matching("a/b").size(), 1u);
  EXPECT_TRUE(router.sessions_matching("b").empty());
}

TEST_F(RouterTest, BrokerMessagesGoWhereverThereIsRoom) {
  auto small = session(1, 1, "a/#", QoS::k1);
  auto large = session(2, 100, "a/b", QoS::k1);
  router.publish(message(QoS::k1), Clock::now(), Router::Policy::kBestEffort);
  auto r = router.publish(message(QoS::k1), Clock::now(), Router::Policy::kBestEffort);
  EXPECT_EQ(r.deliveries, 1u);
  EXPECT_EQ(large->queued_count(), 2u);
}

TEST_F(RouterTest, OverlappingSubscriptionsDeliverOnceAtTheHighestQoS) {
  auto s = session(1, 100, "a/+", QoS::k1);
  SubscriptionEntry e;
  e.options.qos = QoS::k2;
  e.subscription_id = 7;
  s->add_subscription("a/#", SubscriptionRecord{e.options, 7});
  router.subscribe(s, "a/#", e);
  auto r = router.publish(message(QoS::k2), Clock::now());
  EXPECT_EQ(r.deliveries, 1u);
  std::vector<Session::Ready> ready;
  size_t expired = 0;
  std::vector<uint64_t> forget;  // stored deliveries dropped
  s->take_ready(listener.get(), 10, Clock::now(), ready, expired, forget);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].delivery.qos, QoS::k2);
  EXPECT_EQ(ready[0].delivery.subscription_ids, std::vector<uint32_t>{7});
}

}  // namespace
}  // namespace starling::broker
