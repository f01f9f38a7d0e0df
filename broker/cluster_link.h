// How the broker core sees the rest of the cluster: the Forwarder its router
// uses (routing/forwarder.h), where messages from other nodes are delivered,
// who the members are, whether this node has joined, and the leaving on
// shutdown. A single node uses SingleNode; cluster/ implements it over gRPC.
// The broker core never includes a cluster header.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "broker/routing/forwarder.h"
#include "broker/session/session_registry.h"
#include "broker/session/session_replication.h"

namespace starling::broker {

struct ClusterMember {
  std::string node_id;
  std::string address;  // what peers dial; empty for a single node
  std::string state;    // alive, suspect, dead or left
  uint64_t incarnation = 0;
  bool self = false;
};

class ClusterLink {
 public:
  virtual ~ClusterLink() = default;
  // What the router tells of subscriptions and hands published messages to.
  virtual Forwarder& forwarder() = 0;
  // Messages from other nodes go to `sessions` from now on (called once, when
  // the node's parts exist, before it accepts clients).
  virtual void serve(SessionRegistry& sessions) = 0;
  // Whether there are other nodes to ask at CONNECT (take_session).
  virtual bool clustered() const = 0;
  // A CONNECT for `client_id` here: a connection of it on another node is
  // closed (0x8E) and its session there ends; handed over unless
  // clean_start (`handed`; nullopt: no other node had it). `refused`: a
  // newer CONNECT of the client on another node wins; this one is refused.
  // `done` runs once the other nodes answered (bounded in time), on a thread
  // of the cluster's, or at once.
  struct Takeover {
    bool refused = false;
    std::optional<HandedSession> handed;
    uint64_t ticket = 0;  // for connected() and release_session()
    // The node that keeps the handed session queuing until release_session
    // (HandedSession::held); empty when none does.
    std::string held_by;
  };
  using TakeoverDone = std::function<void(Takeover)>;
  virtual void take_session(const std::string& client_id, bool clean_start, TakeoverDone done) = 0;
  // The session a takeover brought is subscribed here and its routes are
  // known to every live node: `held_by` lets it go, and `done` gets what it
  // queued there meanwhile, in order (nothing when it could not be reached),
  // on a thread of the cluster's. Once for every Takeover with held_by set.
  using ReleaseDone = std::function<void(std::vector<Delivery> tail)>;
  virtual void release_session(const std::string& held_by, const std::string& client_id, uint64_t ticket,
                               ReleaseDone done) = 0;
  // The session is open here now: false when a newer CONNECT of the client
  // on another node came in meanwhile (this one is then refused, and the
  // session it opened ended). Called once after every take_session that was
  // not refused.
  virtual bool connected(const std::string& client_id, uint64_t ticket) = 0;
  // Every member this node knows, itself included, by node id.
  virtual std::vector<ClusterMember> members() const = 0;
  // Why this node is not a full member yet (joining, syncing); empty once it is.
  virtual std::vector<std::string> not_ready() const = 0;
  // The node shuts down: tell the others, so they need not detect it. Waits
  // a bounded time (about a second).
  virtual void leave() = 0;
  // The cluster's own metric families, appended at scrape time.
  virtual void collect_metrics(std::vector<prometheus::MetricFamily>& out) const = 0;
  // Where this node's persistent sessions are copied to; null when they are
  // not (a single node, or --replication-factor 1).
  virtual SessionReplication* replication() { return nullptr; }
};

class SingleNode final : public ClusterLink {
 public:
  explicit SingleNode(std::string node_id) : node_id_(std::move(node_id)) {}
  Forwarder& forwarder() override { return local_; }
  void serve(SessionRegistry&) override {}
  bool clustered() const override { return false; }
  void take_session(const std::string&, bool, TakeoverDone done) override { done({}); }
  void release_session(const std::string&, const std::string&, uint64_t, ReleaseDone done) override { done({}); }
  bool connected(const std::string&, uint64_t) override { return true; }
  std::vector<ClusterMember> members() const override { return {ClusterMember{node_id_, {}, "alive", 0, true}}; }
  std::vector<std::string> not_ready() const override { return {}; }
  void leave() override {}
  void collect_metrics(std::vector<prometheus::MetricFamily>&) const override {}

 private:
  std::string node_id_;
  LocalOnly local_;
};

}  // namespace starling::broker
