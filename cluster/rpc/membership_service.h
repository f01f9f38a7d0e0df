#pragma once

// The Membership gRPC service (proto/cluster.proto): checks the cluster
// secret on every call, then hands it to the node's Membership. Also a
// one-shot ping for tools and tests.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "cluster/membership/membership.h"
#include "proto/cluster.grpc.pb.h"

namespace starling::cluster {

// Callback API: calls are answered on gRPC's own threads, with no thread pool
// of ours and no blocking (PingReq waits for the target asynchronously). A
// call without the cluster secret (when one is set) is refused with
// UNAUTHENTICATED, counted and logged.
class MembershipService final : public v1::Membership::CallbackService {
 public:
  explicit MembershipService(std::string secret);
  // The membership that answers; until then calls get UNAVAILABLE (the
  // listener is bound before the node knows its advertised port).
  void attach(Membership& membership) { membership_.store(&membership); }

  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context, const v1::PingRequest* request,
                                 v1::PingReply* reply) override;
  grpc::ServerUnaryReactor* PingReq(grpc::CallbackServerContext* context, const v1::PingReqRequest* request,
                                    v1::PingReply* reply) override;
  grpc::ServerUnaryReactor* Sync(grpc::CallbackServerContext* context, const v1::SyncRequest* request,
                                 v1::SyncReply* reply) override;

 private:
  // The membership, or null (and the call finished) when the call lacks the
  // secret or none is attached yet.
  Membership* serving(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor);

  std::atomic<Membership*> membership_{nullptr};
  const std::string secret_;  // never logged
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
// most `deadline`. Opens a fresh channel each time: meant for tools and
// tests; Membership keeps one channel per peer instead.
PingResult ping_peer(const std::string& address, std::chrono::milliseconds deadline,
                     const std::string& from_node = {}, std::uint64_t incarnation = 0,
                     const std::string& secret = {});

}  // namespace starling::cluster
