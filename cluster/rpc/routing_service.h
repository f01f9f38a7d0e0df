#pragma once

// The Routing gRPC service (proto/cluster.proto): other nodes' route updates
// into the RouteTable, their forwarded messages to this node's sessions and
// retained store, and this node's retained messages for a node catching up.
// Checks the cluster secret on every call.

#include <atomic>
#include <functional>
#include <string>

#include <grpcpp/grpcpp.h>
#include <spdlog/logger.h>

#include "broker/session/session_registry.h"
#include "cluster/routing/cluster_forwarder.h"
#include "cluster/routing/inbound_batches.h"
#include "cluster/routing/route_table.h"
#include "cluster/log_limit.h"
#include "cluster/rpc/cluster_secret.h"
#include "cluster/sessions/moved_sessions.h"
#include "proto/cluster.grpc.pb.h"

namespace starling::cluster {

// Forward is served raw (bytes in and out) so that a batch this node cannot
// read ends its stream with an error the sender sees, not as if the sender
// had closed it.
using RoutingBase = v1::Routing::WithCallbackMethod_UpdateRoutes<
    v1::Routing::WithRawCallbackMethod_Forward<v1::Routing::WithCallbackMethod_RetainedSnapshot<v1::Routing::Service>>>;
class RoutingService final : public RoutingBase {
 public:
  // Sends a message that came here for a session that moved on (`moved`)
  // to its node; `done(ok)` once that node has it (or did not answer).
  using Relay = std::function<void(const MovedSessions::Relay&, std::function<void(bool)> done)>;
  RoutingService(std::string secret, RouteTable& routes, ClusterForwarder& forwarder, RetainedVersions& retained,
                 MovedSessions& moved, Relay relay, OnRefused refused, spdlog::logger& log);

  // Forwarded messages go to `sessions` from now on; until then (and after
  // detach) Forward answers UNAVAILABLE and the sender retries.
  void attach(broker::SessionRegistry* sessions) { sessions_.store(sessions); }

  grpc::ServerUnaryReactor* UpdateRoutes(grpc::CallbackServerContext* context, const v1::RouteUpdate* request,
                                         v1::RouteAck* reply) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Forward(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* RetainedSnapshot(grpc::CallbackServerContext* context,
                                             const v1::RetainedPageRequest* request, v1::RetainedPage* reply) override;

 private:
  class ForwardStream;
  // A peer sent a batch that does not parse: logged, at most every 10 s.
  void unreadable(const std::string& peer);
  // The sessions, once admitted and attached; else null, the call finished.
  broker::SessionRegistry* serving(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor);
  // Delivers a batch new to this node here, its outcome told to `outcome`.
  void take(const v1::ForwardBatch& batch, broker::SessionRegistry& sessions,
            const std::shared_ptr<BatchOutcome>& outcome);

  const std::string secret_;  // never logged
  RouteTable& routes_;
  ClusterForwarder& forwarder_;
  RetainedVersions& retained_;
  MovedSessions& moved_;
  Relay relay_;
  OnRefused refused_;
  InboundBatches inbound_;
  spdlog::logger& log_;
  LogLimit unreadable_log_{std::chrono::seconds(10)};
  LogLimit relayed_log_{std::chrono::seconds(10)};
  std::atomic<broker::SessionRegistry*> sessions_{nullptr};
};

}  // namespace starling::cluster
