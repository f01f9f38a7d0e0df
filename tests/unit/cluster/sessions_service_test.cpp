// The member's side of session replication (SessionsService::Replicate),
// called over loopback gRPC.
#include "cluster/rpc/sessions_service.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "broker/routing/retained_store.h"
#include "broker/routing/router.h"
#include "cluster/sessions/session_transfer.h"
#include "tests/unit/cluster/cluster_test_support.h"

namespace starling::cluster {
namespace {

using testing::quiet_log;

using std::chrono::milliseconds;

// Copies sent back by the member are refused while `*refuse` is true.
ReplicaRules refusing_copies_while(const bool* refuse) {
  ReplicaRules rules;
  rules.refuses_copies_from = [refuse](const std::string&, const std::string&) { return *refuse; };
  return rules;
}

ForwardingConfig forwarding_config() {
  ForwardingConfig config;
  config.node_id = "n2";
  return config;
}

// One node's Sessions service over its own registry, on a free loopback port.
struct SessionsServiceFixture : ::testing::Test {
  RouteTable routes{1};
  RetainedVersions versions{"n2"};
  ClusterForwarder forwarder{forwarding_config(), routes, versions, quiet_log()};
  broker::Router router{forwarder};
  broker::RetainedStore retained;
  broker::SessionRegistry registry{router, retained, broker::QueueLimits{100, 1 << 20}};
  ConnectFence fence{"n2"};
  MovedSessions moved;
  bool refuse_copies = false;
  SessionsService service{"", fence, forwarder, moved, {}, refusing_copies_while(&refuse_copies)};
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::Sessions::Stub> stub;

  void SetUp() override {
    service.attach(&registry);
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service);
    server = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    stub = v1::Sessions::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server->Shutdown(std::chrono::system_clock::now() + milliseconds{500}); }

  // A call from n1 (start `sender`) numbered `call` with one update for "c".
  grpc::Status replicate(uint64_t sender, uint64_t call, const std::function<void(v1::ReplicaUpdate&)>& set) {
    v1::ReplicateRequest request;
    request.set_from_node("n1");
    request.set_sender(sender);
    request.set_call(call);
    auto* update = request.add_updates();
    update->set_client_id("c");
    set(*update);
    v1::ReplicateReply reply;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + milliseconds{5000});
    return stub->Replicate(&context, request, &reply);
  }
  static void open(v1::ReplicaUpdate& u) {
    u.mutable_open()->set_generation(1);
    u.mutable_open()->set_expiry_interval(600);
  }
  static void drop(v1::ReplicaUpdate& u) { u.set_drop(true); }
  // A QoS 2 message on "t", numbered `serial`.
  static broker::Delivery numbered(uint64_t serial) {
    broker::Delivery d;
    d.qos = mqtt::QoS::k2;
    d.message = testing::numbered_message("t", d.qos, serial);
    return d;
  }
  static std::function<void(v1::ReplicaUpdate&)> sent_back(uint64_t serial) {
    return [serial](v1::ReplicaUpdate& u) {
      add_deliveries(*u.mutable_sent_back()->mutable_deliveries(), {}, {numbered(serial)});
    };
  }
  static std::function<void(v1::ReplicaUpdate&)> relayed(uint64_t serial) {
    return [serial](v1::ReplicaUpdate& u) {
      add_deliveries(*u.mutable_relayed()->mutable_deliveries(), {}, {numbered(serial)});
    };
  }
};

// An owner's call that timed out may still arrive after the next one: it is
// refused, not applied over what followed it.
TEST_F(SessionsServiceFixture, ACallThatComesAfterALaterOneIsRefused) {
  ASSERT_TRUE(replicate(7, 2, open).ok());
  ASSERT_TRUE(registry.replica_of("c").has_value());
  const auto late = replicate(7, 1, drop);
  EXPECT_EQ(late.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_TRUE(registry.replica_of("c").has_value());  // the late drop was not applied
  // The owner's next call, and a restarted owner's first, are taken.
  EXPECT_TRUE(replicate(7, 3, open).ok());
  EXPECT_TRUE(replicate(8, 1, drop).ok());
  EXPECT_FALSE(registry.replica_of("c").has_value());
}

// A copy sent back by a member that was cut off while this node kept a
// majority is stale (it misses what the client completed here): it is not
// merged. A message relayed from where the session was before is.
TEST_F(SessionsServiceFixture, ACopySentBackByACutOffMemberIsNotMerged) {
  auto session = registry.open("c", false, 600, std::make_shared<testing::NullListener>()).session;
  const auto queued = [&] { return session->queued_snapshot().size(); };
  refuse_copies = true;
  ASSERT_TRUE(replicate(0, 0, sent_back(1)).ok());
  EXPECT_EQ(queued(), 0u);
  ASSERT_TRUE(replicate(0, 0, relayed(2)).ok());
  EXPECT_EQ(queued(), 1u);
  refuse_copies = false;
  ASSERT_TRUE(replicate(0, 0, sent_back(1)).ok());
  EXPECT_EQ(queued(), 2u);
}

}  // namespace
}  // namespace starling::cluster
