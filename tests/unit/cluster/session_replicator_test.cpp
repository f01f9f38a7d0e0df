// The owner's side of session replication against a member whose Sessions
// service is a fake that records what it is told and fails calls on demand.
#include "cluster/replication/session_replicator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "broker/routing/forwarder.h"
#include "broker/routing/retained_store.h"
#include "broker/routing/router.h"
#include "broker/session/session_registry.h"
#include "cluster/rpc/membership_service.h"
#include "tests/unit/cluster/cluster_test_support.h"

namespace starling::cluster {
namespace {

using testing::eventually;
using testing::NullListener;
using testing::quiet_log;
using testing::TestNode;

using std::chrono::milliseconds;

// A member's Sessions service: keeps every update of the calls it took; a
// call with a completion (`forget`) fails while `fail_forgets` is set.
class FakeSessions final : public v1::Sessions::CallbackService {
 public:
  grpc::ServerUnaryReactor* Replicate(grpc::CallbackServerContext* context, const v1::ReplicateRequest* request,
                                      v1::ReplicateReply*) override {
    auto* reactor = context->DefaultReactor();
    std::lock_guard lock(mu_);
    const bool has_forget = std::any_of(request->updates().begin(), request->updates().end(),
                                        [](const v1::ReplicaUpdate& u) { return u.has_forget(); });
    if (has_forget && fail_forgets_) {
      fail_forgets_ = false;
      ++failed_;
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "failed on purpose"));
      return reactor;
    }
    for (const auto& u : request->updates()) taken_.push_back(u);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  void fail_next_forget() {
    std::lock_guard lock(mu_);
    fail_forgets_ = true;
  }
  int failed() const {
    std::lock_guard lock(mu_);
    return failed_;
  }
  // How many updates taken for `client_id` satisfy `pick`.
  size_t count(const std::string& client_id, const std::function<bool(const v1::ReplicaUpdate&)>& pick) const {
    std::lock_guard lock(mu_);
    return static_cast<size_t>(std::count_if(taken_.begin(), taken_.end(), [&](const v1::ReplicaUpdate& u) {
      return u.client_id() == client_id && pick(u);
    }));
  }

 private:
  mutable std::mutex mu_;
  bool fail_forgets_ = false;
  int failed_ = 0;
  std::vector<v1::ReplicaUpdate> taken_;
};

// Timings that hold under the sanitizers: a member is suspected only after
// 200 ms without an answer, and declared dead 2 s later.
MembershipConfig steady_config(std::string node_id) {
  MembershipConfig c = testing::fast_config(std::move(node_id));
  c.swim.suspicion_timeout = milliseconds{2000};
  c.ping_timeout = milliseconds{200};
  return c;
}

bool sees_alive(TestNode& node, const std::string& id) { return node.state_of(id) == MemberState::alive; }

bool forgets(const v1::ReplicaUpdate& u, uint64_t serial) {
  return u.has_forget() && std::any_of(u.forget().ids().begin(), u.forget().ids().end(),
                                       [&](const auto& id) { return id.serial() == serial; });
}

// A completion whose call failed reaches the copy after all. The refill that
// follows a failed call merges the session into the copy and removes
// nothing: without the completion, the copy kept the message, and sent it
// again (a QoS 2 message twice) once it became the session.
TEST(SessionReplicator, SendsACompletionAgainAfterItsCallFailed) {
  FakeSessions copies;
  TestNode n2{steady_config("n2"), {}, &copies};
  TestNode n1{steady_config("n1"), {n2.address()}};
  n2.membership().start();
  n1.membership().start();
  ASSERT_TRUE(eventually([&] { return sees_alive(n1, "n2") && sees_alive(n2, "n1"); }, milliseconds{5000}));

  broker::LocalOnly forwarder;
  broker::Router router{forwarder};
  broker::RetainedStore retained;
  broker::SessionRegistry registry{router, retained, broker::QueueLimits{100, 1 << 20}};
  auto listener = std::make_shared<NullListener>();
  auto session = registry.open("c", false, 600, listener).session;

  ReplicationConfig config;
  config.node_id = "n1";
  config.factor = 2;
  config.call_timeout = milliseconds{1000};
  uint64_t epoch = 100;
  SessionReplicator replicator{config, n1.membership(), forwarder, [&] { return ++epoch; }, {}, quiet_log()};
  replicator.start(registry);
  // The first pass opens and fills the copy on n2.
  ASSERT_TRUE(eventually([&] { return copies.count("c", [](const auto& u) { return u.has_fill(); }) > 0; },
                         milliseconds{5000}));

  const broker::MessageId done{7, 8, 9};
  copies.fail_next_forget();
  replicator.completed(*session, done);
  ASSERT_TRUE(eventually([&] { return copies.failed() == 1; }, milliseconds{5000}));
  // Until n2 has it, the completion counts as unconfirmed (a session handed
  // over brings it along).
  const auto unconfirmed = replicator.unconfirmed_completions(*session);
  EXPECT_EQ(unconfirmed.size(), 1u);

  EXPECT_TRUE(eventually([&] { return copies.count("c", [](const auto& u) { return forgets(u, 9); }) == 1; },
                         milliseconds{5000}));
  // ...and the copy was filled again too.
  EXPECT_TRUE(eventually([&] { return copies.count("c", [](const auto& u) { return u.has_fill(); }) >= 2; },
                         milliseconds{5000}));
  EXPECT_TRUE(eventually([&] { return replicator.unconfirmed_completions(*session).empty(); }, milliseconds{5000}));
  replicator.stop();
}

// What the owner makes of a copy that a member sends back after it was
// gone, told the member changes one by one (the loop is not started).
struct CutOffRules : ::testing::Test {
  TestNode n1{steady_config("n1")};
  broker::LocalOnly forwarder;
  SessionReplicator replicator{owner_config(), n1.membership(), forwarder, [] { return 1; }, {}, quiet_log()};

  static ReplicationConfig owner_config() {
    ReplicationConfig config;
    config.node_id = "n1";
    return config;
  }

  void tell(const std::string& node, MemberState state, std::optional<MemberState> before) {
    Member m;
    m.node_id = node;
    m.state = state;
    replicator.member_changed(m, before);
  }
  void join(const std::string& node) { tell(node, MemberState::alive, std::nullopt); }
  void change(const std::string& node, MemberState before, MemberState now) { tell(node, now, before); }
  void goes(const std::string& node) {
    change(node, MemberState::alive, MemberState::suspect);
    change(node, MemberState::suspect, MemberState::dead);
  }
};

// n1 and n2 kept a majority while n3 was cut off: n3's copies are stale,
// even though n3's return made n2 suspect for a moment (news of its death
// that n3 spreads).
TEST_F(CutOffRules, ACopyFromAMemberCutOffWhileThisNodeKeptAMajorityIsRefused) {
  join("n2");
  join("n3");
  goes("n3");
  change("n2", MemberState::alive, MemberState::suspect);
  change("n3", MemberState::dead, MemberState::alive);
  change("n2", MemberState::suspect, MemberState::alive);
  EXPECT_TRUE(replicator.refuses_copy_from("n3", "c"));
  EXPECT_FALSE(replicator.refuses_copy_from("n2", "c")) << "never gone";
}

// This node was the one cut off: n2 was suspect already when it declared
// n3 dead, so n3's copies may hold messages acknowledged without it.
TEST_F(CutOffRules, ACopyFromAMemberDeclaredDeadWithoutAnAliveMajorityIsTaken) {
  join("n2");
  join("n3");
  change("n2", MemberState::alive, MemberState::suspect);
  goes("n3");
  change("n3", MemberState::dead, MemberState::alive);
  change("n2", MemberState::suspect, MemberState::alive);
  EXPECT_FALSE(replicator.refuses_copy_from("n3", "c"));
}

// A majority at first, then a minority before n3 came back (n2 dead too):
// the other side may have acknowledged messages to n3's copies.
TEST_F(CutOffRules, ACopyFromAMemberBackAfterThisNodeSawAMinorityIsTaken) {
  join("n2");
  join("n3");
  goes("n3");
  goes("n2");
  change("n3", MemberState::dead, MemberState::alive);
  change("n2", MemberState::dead, MemberState::alive);
  EXPECT_FALSE(replicator.refuses_copy_from("n3", "c"));
}

}  // namespace
}  // namespace starling::cluster
