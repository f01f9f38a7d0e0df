#include "cluster/rpc/membership_service.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

namespace starling::cluster {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// A Membership server on a free loopback port, shut down when the test ends.
class TestServer {
 public:
  TestServer(std::string node_id, std::uint64_t incarnation, std::string secret = {})
      : service_{std::move(node_id), incarnation, std::move(secret)} {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~TestServer() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + milliseconds{500});
  }

  bool started() const { return server_ != nullptr && port_ != 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  MembershipService& service() { return service_; }

 private:
  MembershipService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

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

TEST(MembershipService, AnswersPingWithNodeIdAndIncarnation) {
  TestServer server{"node-a", 3};
  ASSERT_TRUE(server.started());

  const PingResult first = ping_peer(server.address(), milliseconds{5000}, "node-b", 9);
  ASSERT_TRUE(first.ok()) << first.error;
  EXPECT_EQ(first.peer->node_id, "node-a");
  EXPECT_EQ(first.peer->incarnation, 3u);
  EXPECT_EQ(first.code, grpc::StatusCode::OK);
  EXPECT_TRUE(first.error.empty());

  // A refuted suspicion raises the incarnation; the next ping reports it.
  server.service().set_incarnation(4);
  const PingResult second = ping_peer(server.address(), milliseconds{5000});
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_EQ(second.peer->incarnation, 4u);
}

TEST(MembershipService, RefusesACallWithoutTheClusterSecret) {
  TestServer server{"node-a", 1, "s3cret"};
  ASSERT_TRUE(server.started());
  for (const std::string wrong : {"", "s3creT", "s3cret-and-more"}) {
    const PingResult refused = ping_peer(server.address(), milliseconds{5000}, "intruder", 0, wrong);
    EXPECT_FALSE(refused.ok()) << "secret '" << wrong << "'";
    EXPECT_EQ(refused.code, grpc::StatusCode::UNAUTHENTICATED) << refused.error;
    EXPECT_NE(refused.error.find("cluster secret"), std::string::npos) << refused.error;
  }
  EXPECT_EQ(server.service().refused(), 3u);
  const PingResult right = ping_peer(server.address(), milliseconds{5000}, "node-b", 0, "s3cret");
  ASSERT_TRUE(right.ok()) << right.error;
  EXPECT_EQ(right.peer->node_id, "node-a");
  EXPECT_EQ(server.service().refused(), 3u);
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
