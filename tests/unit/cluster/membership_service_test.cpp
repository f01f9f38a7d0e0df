#include "cluster/rpc/membership_service.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "cluster/rpc/cluster_secret.h"
#include "tests/unit/cluster/cluster_test_support.h"

namespace starling::cluster {
namespace {

using testing::eventually;
using testing::quiet_log;
using testing::TestNode;

using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::unique_ptr<v1::Membership::Stub> stub_to(const std::string& address) {
  return v1::Membership::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

// A loopback TCP socket bound to a free port; listening or not. Holding the
// port keeps any other process from taking it during the test.
class ReservedPort {
 public:
  explicit ReservedPort(bool listen) : fd_{::socket(AF_INET, SOCK_STREAM, 0)} {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
        (listen && ::listen(fd_, 16) != 0)) {
      return;
    }
    port_ = ntohs(address.sin_port);
  }
  ~ReservedPort() {
    if (fd_ >= 0) ::close(fd_);
  }
  ReservedPort(const ReservedPort&) = delete;
  ReservedPort& operator=(const ReservedPort&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_;
  int port_ = 0;
};

TEST(MembershipService, AnswersPingAndRefutesSuspicionOfItself) {
  TestNode node{"node-a"};
  ASSERT_TRUE(node.started());

  const PingResult first = ping_peer(node.address(), milliseconds{5000}, "node-b", 9);
  ASSERT_TRUE(first.ok()) << first.error;
  EXPECT_EQ(first.peer->node_id, "node-a");
  EXPECT_EQ(first.peer->incarnation, 0u);
  EXPECT_EQ(first.code, grpc::StatusCode::OK);
  EXPECT_TRUE(first.error.empty());

  // Gossip that node-a is suspect: it refutes with a higher incarnation,
  // in its reply's gossip too.
  auto stub = stub_to(node.address());
  grpc::ClientContext context;
  v1::PingRequest request;
  request.set_from_node("node-b");
  request.set_from_address("127.0.0.1:1");
  *request.add_gossip() = to_proto(MemberUpdate{"node-a", node.address(), 0, MemberState::suspect});
  v1::PingReply reply;
  ASSERT_TRUE(stub->Ping(&context, request, &reply).ok());
  EXPECT_EQ(reply.incarnation(), 1u);
  const auto& gossip = reply.gossip();
  EXPECT_TRUE(std::any_of(gossip.begin(), gossip.end(), [](const v1::MemberUpdate& u) {
    return u.node_id() == "node-a" && u.incarnation() == 1 && u.state() == v1::MEMBER_STATE_ALIVE;
  }));
  // The caller, which gave its address, is now a member.
  EXPECT_EQ(node.state_of("node-b"), MemberState::alive);

  const PingResult second = ping_peer(node.address(), milliseconds{5000});
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_EQ(second.peer->incarnation, 1u);
}

TEST(MembershipService, RefusesEveryCallWithoutTheClusterSecret) {
  TestNode node{"node-a", "s3cret"};
  ASSERT_TRUE(node.started());
  for (const std::string wrong : {"", "s3creT", "s3cret-and-more"}) {
    const PingResult refused = ping_peer(node.address(), milliseconds{5000}, "intruder", 0, wrong);
    EXPECT_FALSE(refused.ok()) << "secret '" << wrong << "'";
    EXPECT_EQ(refused.code, grpc::StatusCode::UNAUTHENTICATED) << refused.error;
    EXPECT_NE(refused.error.find("cluster secret"), std::string::npos) << refused.error;
  }
  // Sync too, and the intruder learns nothing and is not learned.
  auto stub = stub_to(node.address());
  grpc::ClientContext context;
  attach_secret(context, "wrong");
  v1::SyncRequest request;
  *request.add_members() = to_proto(MemberUpdate{"intruder", "127.0.0.1:1", 0, MemberState::alive});
  v1::SyncReply reply;
  EXPECT_EQ(stub->Sync(&context, request, &reply).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(reply.members_size(), 0);
  EXPECT_FALSE(node.state_of("intruder").has_value());
  EXPECT_EQ(node.membership().refused_calls(), 4u);

  const PingResult right = ping_peer(node.address(), milliseconds{5000}, "node-b", 0, "s3cret");
  ASSERT_TRUE(right.ok()) << right.error;
  EXPECT_EQ(right.peer->node_id, "node-a");
  EXPECT_EQ(node.membership().refused_calls(), 4u);
}

TEST(MembershipService, SyncExchangesEverythingKnown) {
  TestNode node{"node-a"};
  ASSERT_TRUE(node.started());
  auto stub = stub_to(node.address());
  grpc::ClientContext context;
  v1::SyncRequest request;
  request.set_from_node("node-b");
  *request.add_members() = to_proto(MemberUpdate{"node-b", "127.0.0.1:2", 0, MemberState::alive});
  *request.add_members() = to_proto(MemberUpdate{"node-c", "127.0.0.1:3", 4, MemberState::alive});
  v1::SyncReply reply;
  ASSERT_TRUE(stub->Sync(&context, request, &reply).ok());
  EXPECT_EQ(reply.node_id(), "node-a");
  EXPECT_EQ(reply.members_size(), 3);
  EXPECT_EQ(node.state_of("node-b"), MemberState::alive);
  EXPECT_EQ(node.state_of("node-c"), MemberState::alive);
}

TEST(MembershipService, PingReqAsksTheTargetOrFailsInTime) {
  // A helper that waits long enough for a first connection to the target,
  // even in a sanitizer build.
  TestNode helper{"helper", {}, {}, milliseconds{2000}};
  TestNode target{"target"};
  ASSERT_TRUE(helper.started() && target.started());
  auto stub = stub_to(helper.address());
  {
    grpc::ClientContext context;
    v1::PingReqRequest request;
    request.set_target_node("target");
    request.set_target_address(target.address());
    request.set_timeout_ms(2000);
    v1::PingReply reply;
    ASSERT_TRUE(stub->PingReq(&context, request, &reply).ok());
    EXPECT_EQ(reply.node_id(), "target");
  }
  {
    ReservedPort closed{/*listen=*/false};
    grpc::ClientContext context;
    v1::PingReqRequest request;
    request.set_target_node("gone");
    request.set_target_address(closed.address());
    request.set_timeout_ms(30);
    v1::PingReply reply;
    const auto start = steady_clock::now();
    EXPECT_EQ(stub->PingReq(&context, request, &reply).error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_LT(steady_clock::now() - start, milliseconds{2000});
  }
  {
    // Another node answers at the address: not the target.
    grpc::ClientContext context;
    v1::PingReqRequest request;
    request.set_target_node("someone-else");
    request.set_target_address(target.address());
    request.set_timeout_ms(2000);
    v1::PingReply reply;
    EXPECT_EQ(stub->PingReq(&context, request, &reply).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
}

TEST(Membership, ThreeNodesJoinDetectADeadOneAndHearOfOneLeaving) {
  TestNode a{"a"};
  TestNode b{"b", {}, {a.address()}};
  TestNode c{"c", {}, {a.address()}};
  ASSERT_TRUE(a.started() && b.started() && c.started());
  a.membership().start();
  b.membership().start();
  c.membership().start();
  // b and c only know a; gossip tells them of each other.
  ASSERT_TRUE(eventually([&] { return b.state_of("c") == MemberState::alive && c.state_of("b") == MemberState::alive; },
                         milliseconds{5000}));
  EXPECT_TRUE(a.membership().joined() && b.membership().joined() && c.membership().joined());

  // c crashes: suspect, then dead.
  c.crash();
  TestNode* survivors[] = {&a, &b};
  for (TestNode* n : survivors) {
    EXPECT_TRUE(eventually([&] { return n->state_of("c") == MemberState::dead; }, milliseconds{5000}))
        << n->membership().node_id();
  }
  // b leaves: a hears it at once, without waiting for detection.
  const auto start = steady_clock::now();
  b.membership().leave();
  EXPECT_TRUE(eventually([&] { return a.state_of("b") == MemberState::left; }, milliseconds{1000}));
  EXPECT_LT(steady_clock::now() - start, milliseconds{1000});
}

TEST(Membership, WithoutAnAnsweringSeedANodeServesAloneAfterTheJoinTimeout) {
  ReservedPort closed{/*listen=*/false};
  TestNode lonely{"lonely", {}, {closed.address()}};
  ASSERT_TRUE(lonely.started());
  lonely.membership().start();
  std::this_thread::sleep_for(milliseconds{300});
  EXPECT_FALSE(lonely.membership().joined());
  EXPECT_TRUE(eventually([&] { return lonely.membership().joined(); }, milliseconds{3000}));
}

TEST(MembershipService, PingToClosedPortFailsWithinDeadline) {
  ReservedPort closed{/*listen=*/false};  // bound, not listening: connections are refused
  ASSERT_NE(closed.port(), 0);

  const auto deadline = milliseconds{3000};
  const auto start = steady_clock::now();
  const PingResult result = ping_peer(closed.address(), deadline);
  const auto elapsed = steady_clock::now() - start;

  EXPECT_FALSE(result.ok());
  EXPECT_FALSE(result.peer.has_value());
  EXPECT_NE(result.code, grpc::StatusCode::OK);
  EXPECT_NE(result.error.find(closed.address()), std::string::npos) << result.error;
  EXPECT_EQ(result.error.find('\n'), std::string::npos);
  EXPECT_LT(elapsed, deadline + milliseconds{1000});
}

TEST(MembershipService, PingToSilentPeerStopsAtDeadline) {
  // Accepts TCP (the kernel completes the handshake) but never speaks HTTP/2.
  ReservedPort silent{/*listen=*/true};
  ASSERT_NE(silent.port(), 0);

  const auto start = steady_clock::now();
  const PingResult result = ping_peer(silent.address(), milliseconds{300});
  const auto elapsed = steady_clock::now() - start;

  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.code, grpc::StatusCode::DEADLINE_EXCEEDED) << result.error;
  EXPECT_LT(elapsed, milliseconds{2000});
}

}  // namespace
}  // namespace starling::cluster
