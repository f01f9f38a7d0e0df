#pragma once

// The Sessions gRPC service (proto/cluster.proto): another node has a CONNECT
// for a client whose connection or session is here; another keeps its copies
// of sessions here current (Replicate).

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <grpcpp/grpcpp.h>

#include "broker/session/session_registry.h"
#include "cluster/routing/cluster_forwarder.h"
#include "cluster/rpc/cluster_secret.h"
#include "cluster/sessions/connect_fence.h"
#include "cluster/sessions/moved_sessions.h"
#include "proto/cluster.grpc.pb.h"

namespace starling::cluster {

// What the service asks of its node about copies (replicas) of sessions.
struct ReplicaRules {
  // Whether `node` is a member that may still answer for its sessions
  // (alive or suspect).
  std::function<bool(const std::string& node)> member_alive;
  // A connect epoch newer than any given out so far (for an adopted session).
  std::function<uint64_t()> new_epoch;
  // Whether this node's sessions are complete: read from disk, checked
  // against the peers' copies, and filled from the copies of them.
  std::function<bool()> sessions_ready;
  // `node` started anew (its first resync): the copies this node keeps
  // there are filled again (it may have come back before it was declared
  // dead, without them).
  std::function<void(const std::string& node)> restarted;
  // Whether a copy of `client_id`'s session that `node` sends back (back
  // after this node had it gone) is stale: `node` was cut off while this
  // node kept a majority, so the copy misses what the client completed
  // here, and holds nothing acknowledged that this node lacks. May be empty.
  std::function<bool(const std::string& node, const std::string& client_id)> refuses_copies_from;
};

class SessionsService final : public v1::Sessions::CallbackService {
 public:
  // `moved`: where a session released here went, for messages that still
  // come here for it (RoutingService relays them).
  SessionsService(std::string secret, ConnectFence& fence, ClusterForwarder& forwarder, MovedSessions& moved,
                  OnRefused refused, ReplicaRules rules)
      : secret_(std::move(secret)),
        fence_(fence),
        forwarder_(forwarder),
        moved_(moved),
        refused_(std::move(refused)),
        rules_(std::move(rules)) {}
  void attach(broker::SessionRegistry* sessions) { sessions_.store(sessions); }

  grpc::ServerUnaryReactor* TakeSession(grpc::CallbackServerContext* context, const v1::TakeSessionRequest* request,
                                        v1::TakeSessionReply* reply) override;
  grpc::ServerUnaryReactor* FindSessions(grpc::CallbackServerContext* context, const v1::FindSessionsRequest* request,
                                         v1::FindSessionsReply* reply) override;
  grpc::ServerUnaryReactor* ReleaseSession(grpc::CallbackServerContext* context,
                                           const v1::ReleaseSessionRequest* request,
                                           v1::ReleaseSessionReply* reply) override;
  grpc::ServerUnaryReactor* Replicate(grpc::CallbackServerContext* context, const v1::ReplicateRequest* request,
                                      v1::ReplicateReply* reply) override;

 private:
  const std::string secret_;  // never logged
  ConnectFence& fence_;
  ClusterForwarder& forwarder_;  // its ticker times a release
  MovedSessions& moved_;
  OnRefused refused_;
  const ReplicaRules rules_;
  std::atomic<broker::SessionRegistry*> sessions_{nullptr};
  // Where each owner's numbered Replicate calls are (ReplicateRequest.call).
  struct CallOrder {
    std::mutex mu;  // held while a call's updates are applied
    uint64_t sender = 0;
    uint64_t last = 0;
  };
  std::shared_ptr<CallOrder> call_order(const std::string& owner);
  std::mutex orders_mu_;
  std::unordered_map<std::string, std::shared_ptr<CallOrder>> orders_;
};

}  // namespace starling::cluster
