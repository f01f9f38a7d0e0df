#pragma once

// The Routing gRPC service (proto/cluster.proto): other nodes' route updates
// into the RouteTable, their forwarded messages to this node's sessions and
// retained store, and this node's retained messages for a node catching up.
// Checks the cluster secret on every call.

#include <atomic>
#include <functional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "broker/session/session_registry.h"
#include "cluster/routing/cluster_forwarder.h"
#include "cluster/routing/route_table.h"
#include "cluster/rpc/cluster_secret.h"
#include "proto/cluster.grpc.pb.h"

namespace starling::cluster {

class RoutingService final : public v1::Routing::CallbackService {
 public:
  RoutingService(std::string secret, RouteTable& routes, ClusterForwarder& forwarder, RetainedVersions& retained,
                 OnRefused refused);

  // Forwarded messages go to `sessions` from now on; until then (and after
  // detach) Forward answers UNAVAILABLE and the sender retries.
  void attach(broker::SessionRegistry* sessions) { sessions_.store(sessions); }

  grpc::ServerUnaryReactor* UpdateRoutes(grpc::CallbackServerContext* context, const v1::RouteUpdate* request,
                                         v1::RouteAck* reply) override;
  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* context, const v1::ForwardBatch* request,
                                    v1::ForwardAck* reply) override;
  grpc::ServerUnaryReactor* RetainedSnapshot(grpc::CallbackServerContext* context,
                                             const v1::RetainedPageRequest* request, v1::RetainedPage* reply) override;

 private:
  // The sessions, once admitted and attached; else null, the call finished.
  broker::SessionRegistry* serving(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor);

  const std::string secret_;  // never logged
  RouteTable& routes_;
  ClusterForwarder& forwarder_;
  RetainedVersions& retained_;
  OnRefused refused_;
  std::atomic<broker::SessionRegistry*> sessions_{nullptr};
};

}  // namespace starling::cluster
