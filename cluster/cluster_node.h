// This node's part in the cluster: the gRPC listener (--cluster-listen) with
// the node-to-node services, and the membership driven over it. The broker
// core sees it only as a broker::ClusterLink; main() wires the two.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <spdlog/logger.h>

#include "broker/cluster_link.h"
#include "broker/config.h"
#include "cluster/membership/membership.h"
#include "cluster/replication/session_replicator.h"
#include "cluster/routing/cluster_forwarder.h"
#include "cluster/routing/retained_sync.h"
#include "cluster/routing/retained_versions.h"
#include "cluster/routing/route_table.h"
#include "cluster/rpc/membership_service.h"
#include "cluster/rpc/routing_service.h"
#include "cluster/rpc/sessions_service.h"
#include "cluster/sessions/session_transfer.h"

namespace starling::cluster {

class ClusterNode final : public broker::ClusterLink {
 public:
  struct Started {
    std::unique_ptr<ClusterNode> node;
    std::string error;  // one line naming the listener, when node is null
  };
  // Binds --cluster-listen, logs "listener cluster bound to HOST:PORT", and
  // starts joining through --join.
  static Started start(const broker::Config& config, spdlog::logger& log);
  ClusterNode() = default;  // empty; start() makes a working one
  ~ClusterNode() override;

  broker::Forwarder& forwarder() override { return *forwarder_; }
  void serve(broker::SessionRegistry& sessions) override;
  bool clustered() const override { return true; }
  void take_session(const std::string& client_id, bool clean_start, TakeoverDone done) override;
  void release_session(const std::string& held_by, const std::string& client_id, uint64_t ticket,
                       ReleaseDone done) override;
  bool connected(const std::string& client_id, uint64_t ticket) override;
  std::vector<broker::ClusterMember> members() const override;
  std::vector<std::string> not_ready() const override;
  void leave() override;
  void collect_metrics(std::vector<prometheus::MetricFamily>& out) const override;
  broker::SessionReplication* replication() override { return replicator_.get(); }

  const std::string& address() const { return address_; }

 private:
  // Ends the offline sessions here that one of `peers` has a newer copy of
  // (read from disk at start-up, or left here by a partition). Blocking.
  // `online_too`: a session with a connection too (after a partition: the
  // client connected on the other side since).
  void drop_moved_sessions(broker::SessionRegistry& sessions, const std::vector<Member>& peers,
                           bool online_too = false);
  // The owner of the client's session (a copy is here or on a peer) when it
  // did not answer, or a peer with a copy still counts it alive, or (with
  // copies) any peer that did not answer: the CONNECT waits for it to answer
  // or be declared dead. Empty when none. `asked`: the peers asked.
  std::string owner_unanswered(const std::string& client_id, const PeersAnswer& answer,
                               const std::vector<Member>& asked) const;
  // Whether a QoS 1/2 PUBLISH here may be acknowledged: not before the node
  // is synced (not_ready() empty once), nor, with copies of sessions, on
  // the small side of a partition.
  bool may_acknowledge(bool copies);
  // The sessions read from disk were checked against the peers' and filled
  // from their copies (SessionReplicator::resynced).
  bool sessions_ready() const;
  // Alive or suspect (not yet declared dead): still the owner of its sessions.
  bool member_up(const std::string& node_id) const;
  // The live peer `node_id`, if it is one.
  std::optional<Member> live_peer(const std::string& node_id) const;
  // No peer handed the session: a copy here whose owner is gone becomes it.
  // `no_other_copy`: no peer said it has a copy either (then a copy read
  // back from disk here may become it).
  void adopt_local_copy(const std::string& client_id, uint64_t epoch, bool no_other_copy);
  // A takeover call (take or release) begins and ends: leave() waits for
  // those under way.
  void takeover_began();
  void takeover_ended();

  std::string address_;  // advertised
  std::unique_ptr<RouteTable> routes_;
  std::unique_ptr<RetainedVersions> retained_;
  std::unique_ptr<ClusterForwarder> forwarder_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<MembershipService> membership_service_;
  MovedSessions moved_;  // before the services that use it
  std::unique_ptr<RoutingService> routing_service_;
  std::unique_ptr<RetainedSync> retained_sync_;
  std::unique_ptr<ConnectFence> fence_;
  std::unique_ptr<SessionsService> sessions_service_;
  std::unique_ptr<SessionReplicator> replicator_;  // null with --replication-factor 1
  std::atomic<broker::SessionRegistry*> sessions_{nullptr};  // set by serve()
  // Membership::has_quorum as of the last change.
  std::atomic<bool> quorum_{true};
  std::atomic<bool> synced_{false};  // not_ready() was empty once
  TakeoverStats takeovers_;
  // Takeovers whose peers have not all answered: their callbacks use this
  // node, which waits for them (bounded by the calls' deadline) as it goes.
  std::mutex takeovers_mu_;
  std::condition_variable takeovers_cv_;
  size_t takeovers_pending_ = 0;
  std::string node_id_;
  std::string secret_;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;  // how peers are called; null: plain
  spdlog::logger* log_ = nullptr;
  std::once_flag left_;
  std::atomic<bool> leaving_{false};  // leave() began: no more releases
  // The sessions read from disk were checked against the peers' (start-up).
  std::atomic<bool> sessions_checked_{false};
  std::unique_ptr<grpc::Server> server_;  // last: stopped first
};

}  // namespace starling::cluster
