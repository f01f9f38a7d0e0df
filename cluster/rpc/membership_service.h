#pragma once

// The Membership gRPC service (proto/cluster.proto) and a one-shot client.
// Today it only answers Ping; the SWIM failure detector builds on both.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "proto/cluster.grpc.pb.h"

namespace starling::cluster {

// Callback API: Ping is answered inline on gRPC's completion threads, with no
// thread pool of our own and no blocking. A call without the cluster secret
// (when one is set) is refused with UNAUTHENTICATED.
class MembershipService final : public v1::Membership::CallbackService {
 public:
  MembershipService(std::string node_id, std::uint64_t incarnation, std::string secret = {});

  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context,
                                 const v1::PingRequest* request,
                                 v1::PingReply* reply) override;

  // Raised by the failure detector to refute a suspicion (SWIM section 4.2).
  void set_incarnation(std::uint64_t incarnation) noexcept;
  std::uint64_t incarnation() const noexcept;
  const std::string& node_id() const noexcept { return node_id_; }
  // Calls refused for a missing or wrong secret (for a metric and the log).
  std::uint64_t refused() const noexcept { return refused_.load(std::memory_order_relaxed); }

 private:
  const std::string node_id_;
  const std::string secret_;  // never logged
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> incarnation_;  // read on gRPC threads, written by the detector
};

struct PeerIdentity {
  std::string node_id;
  std::uint64_t incarnation = 0;
};

// Either the peer's answer or why there is none.
struct PingResult {
  std::optional<PeerIdentity> peer;
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string error;  // one line naming the address; empty on success

  bool ok() const noexcept { return peer.has_value(); }
};

// Pings `address` ("host:port", "[v6]:port", or any gRPC target) and waits at
// most `deadline`. Opens a fresh channel each time: meant for tools, tests and
// joining; the failure detector keeps one channel per peer instead.
PingResult ping_peer(const std::string& address, std::chrono::milliseconds deadline,
                     const std::string& from_node = {}, std::uint64_t incarnation = 0,
                     const std::string& secret = {});

}  // namespace starling::cluster
