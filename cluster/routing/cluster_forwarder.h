// The broker's Forwarder for a cluster: keeps this node's routes in the
// RouteTable and pushes them to every live peer, and sends each published
// message to the peers whose routes match, and a retained one to every live
// peer (to be retained there, versioned by RetainedVersions). One PeerLink per live peer
// (peer_link.h) carries both, in order, on a thread of its own, so a slow
// or dead peer slows nobody else.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/metric_family.h>
#include <spdlog/logger.h>
#include <grpcpp/security/credentials.h>

#include "broker/routing/forwarder.h"
#include "broker/stats.h"
#include "cluster/log_limit.h"
#include "cluster/membership/swim.h"
#include "cluster/routing/retained_versions.h"
#include "cluster/routing/route_table.h"

namespace starling::cluster {

class PeerLink;

struct ForwardingConfig {
  std::string node_id;
  std::string secret;
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // null: plain
  // How long a SUBACK waits for every live peer to have the new route.
  std::chrono::milliseconds route_wait{2000};
  // How often unchanged routes are sent as a digest (anti-entropy).
  std::chrono::milliseconds digest_interval{2000};
  // QoS 0 messages waiting for one peer beyond this are dropped.
  size_t max_queued_qos0 = 10000;
  // Whether this node may acknowledge a QoS 1/2 message published here (it
  // is synced; with copies of sessions, it has a quorum); empty: always.
  std::function<bool()> quorum;
};

// Counters shared by the peer links (per peer in the metrics).
struct PeerCounters {
  std::atomic<uint64_t> sent{0};      // messages acknowledged by the peer
  std::atomic<uint64_t> received{0};  // messages the peer forwarded here
  std::atomic<uint64_t> dropped{0};   // QoS 0 dropped for a slow peer, or lost with it
  std::atomic<uint64_t> refused{0};   // QoS 1/2 the peer could not take
};

class ClusterForwarder final : public broker::Forwarder {
 public:
  ClusterForwarder(ForwardingConfig config, RouteTable& routes, RetainedVersions& retained, spdlog::logger& log);
  ~ClusterForwarder() override;

  // broker::Forwarder
  void subscribed(std::string_view filter) override;
  void unsubscribed(std::string_view filter) override;
  void when_routes_known(Done done) override;
  uint64_t retain(const broker::MessagePtr& message, const std::function<void()>& apply) override;
  size_t forward(const broker::MessagePtr& message, Done done, uint64_t retained_version) override;

  // Membership changed: a live member gets a link, a dead or gone one loses
  // it (failing what waited on it) and its routes.
  void member_changed(const Member& member);
  // A peer acknowledged routes or messages: waiting SUBACKs may go.
  void routes_acknowledged();
  // A peer answered a batch of messages.
  void forwards_answered();
  // Runs `done` once every message handed to a peer link so far has been
  // answered (or failed), or after `timeout`: a message forwarded before
  // some change here has arrived where it went.
  void after_forwards_answered(std::chrono::milliseconds timeout, std::function<void()> done);
  // Runs `done` once `ready()` holds (checked now, then on the ticker every
  // 50 ms) or `timeout` passed; at stop() at the latest.
  void when(std::function<bool()> ready, std::chrono::milliseconds timeout, std::function<void()> done);
  // Runs `done` after about `delay`, the same way.
  void after(std::chrono::milliseconds delay, std::function<void()> done) {
    when([] { return false; }, delay, std::move(done));
  }
  // Stops every link; pending QoS 1/2 forwards fail.
  void stop();

  PeerCounters& counters_for(const std::string& node_id);
  void collect_metrics(std::vector<prometheus::MetricFamily>& out) const;

 private:
  struct Waiter {
    RouteVersion version;
    std::chrono::steady_clock::time_point deadline;
    Done done;
  };
  void check_waiters(bool timeouts);
  void tick();
  // Something to run once `ready` holds or `deadline` passed.
  struct Pending {
    std::function<bool()> ready;
    std::chrono::steady_clock::time_point deadline;
    std::function<void()> done;
  };
  void check_pending(bool all);

  const ForwardingConfig config_;
  RouteTable& routes_;
  RetainedVersions& retained_;
  spdlog::logger& log_;
  LogLimit unanswered_logged_{std::chrono::seconds(5)};  // after_forwards_answered gave up

  mutable std::shared_mutex links_mu_;
  std::map<std::string, std::shared_ptr<PeerLink>, std::less<>> links_;  // live peers
  mutable std::mutex counters_mu_;
  std::map<std::string, std::unique_ptr<PeerCounters>, std::less<>> counters_;

  std::mutex waiters_mu_;
  std::vector<Waiter> waiters_;
  std::atomic<uint64_t> route_wait_timeouts_{0};
  std::mutex local_retain_mu_;  // orders retained changes of node-local ($SYS) topics
  std::mutex pending_mu_;
  std::vector<Pending> pending_;
  std::atomic<uint64_t> group_turn_{0};  // round robin over a shared group's nodes
  broker::LatencyHistogram forward_latency_;

  std::mutex tick_mu_;
  std::condition_variable tick_cv_;
  bool stopping_ = false;
  std::thread ticker_;  // times out waiters
};

}  // namespace starling::cluster
