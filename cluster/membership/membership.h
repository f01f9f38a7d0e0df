// Membership of one node: the SWIM failure detector (swim.h) driven over
// gRPC. A thread of its own probes one member per probe interval (directly,
// then through k helpers), joins through the seeds, and keeps re-checking
// them so nodes that come later, or a cluster that started apart, are found.
// The gRPC service (rpc/membership_service.h) hands incoming calls to the
// on_* methods; every message in both directions carries gossip.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <spdlog/logger.h>

#include "cluster/log_limit.h"
#include "cluster/membership/swim.h"
#include "proto/cluster.grpc.pb.h"

namespace starling::cluster {

struct MembershipConfig {
  std::string node_id;
  std::string address;  // --cluster-advertise: what peers dial
  std::string secret;   // --cluster-secret; empty: none. Never logged.
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // null: plain
  SwimConfig swim;
  // A direct ping that takes longer failed; the indirect ones get the rest of
  // the probe interval.
  std::chrono::milliseconds ping_timeout{400};
  // How often the seeds are resolved again and those not yet members synced.
  std::chrono::milliseconds seed_interval{5000};
  // A node whose seeds never answer serves as a cluster of its own after this
  // long (it keeps trying them, and merges when one answers).
  std::chrono::milliseconds join_timeout{10000};
};

// The seeds' addresses ("host:port"), resolved anew on each call (DNS seeds
// change as pods come and go).
using SeedResolver = std::function<std::vector<std::string>()>;

class Membership {
 public:
  Membership(MembershipConfig config, SeedResolver seeds, spdlog::logger& log);
  ~Membership();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Starts probing and joining on a thread of its own.
  void start();
  // Says "left" to a few members (bounded by ping_timeout) and stops probing.
  // Calls still coming in are answered, with "left" in their gossip.
  void leave();
  // Stops probing without a word (what a crash looks like to the others).
  void stop();

  // --- incoming calls (gRPC threads) ---
  v1::PingReply on_ping(const v1::PingRequest& request);
  // Pings the target for the caller; `done` is called once, on a gRPC thread.
  void on_ping_req(const v1::PingReqRequest& request, std::function<void(grpc::Status, v1::PingReply)> done);
  v1::SyncReply on_sync(const v1::SyncRequest& request);

  // --- reading (any thread) ---
  std::vector<Member> members() const;
  // The other members that are alive: those a node asks or sends to.
  std::vector<Member> live_peers() const;
  // Whether this node sees more than half of the members it knows (alive or
  // suspect, itself included, against those and the dead ones; members that
  // left do not count): false on the small side of a partition.
  bool has_quorum() const;
  // Synced with a seed, or alone on purpose (no seeds, only itself among
  // them, or none answered within join_timeout).
  bool joined() const;
  const std::string& node_id() const { return config_.node_id; }
  uint64_t refused_calls() const;  // wrong or missing secret
  void count_refused(const std::string& peer);
  struct ProbeCounts {
    uint64_t direct = 0;    // answered a direct ping
    uint64_t indirect = 0;  // answered only through a helper
    uint64_t failed = 0;    // did not answer at all
  };
  ProbeCounts probes() const {
    return {probes_direct_.load(std::memory_order_relaxed), probes_indirect_.load(std::memory_order_relaxed),
            probes_failed_.load(std::memory_order_relaxed)};
  }

  // Called after a member changed state (or appeared: before is nullopt),
  // on the thread that learned it, outside the lock, in order. Set before
  // start().
  using Listener = std::function<void(const Member& member, std::optional<MemberState> before)>;
  void on_change(Listener listener) { listeners_.push_back(std::move(listener)); }

 private:
  struct Change {
    Member member;
    std::optional<MemberState> before;
  };

  void run();
  void probe_once();
  // Syncs with every seed that is not a known live member; decides when
  // this node has joined.
  void sync_with_seeds();
  bool sync_with(const std::string& address);
  void notify();  // hands queued changes to the listeners
  std::shared_ptr<v1::Membership::Stub> stub_for(const std::string& address);
  // Gossip for a message to `to`: what is pending, plus, when this node
  // holds `to` suspect or dead, that news, so `to` can refute it.
  std::vector<MemberUpdate> gossip_for(const std::string& to);  // lock held
  grpc::ClientContext* prepare(grpc::ClientContext& context, std::chrono::milliseconds timeout) const;

  const MembershipConfig config_;
  const SeedResolver seeds_;
  spdlog::logger& log_;
  std::vector<Listener> listeners_;

  mutable std::mutex mutex_;  // guards everything below, and swim_
  Swim swim_;
  std::vector<Change> changes_;
  bool joined_ = false;
  bool stopping_ = false;
  Clock::time_point started_;
  Clock::time_point next_seed_sync_;
  uint64_t refused_ = 0;
  LogLimit refused_log_{std::chrono::seconds(10)};
  std::map<std::string, std::shared_ptr<v1::Membership::Stub>, std::less<>> stubs_;
  std::atomic<uint64_t> probes_direct_{0};
  std::atomic<uint64_t> probes_indirect_{0};
  std::atomic<uint64_t> probes_failed_{0};
  std::condition_variable wake_;
  std::mutex notify_mutex_;  // keeps listeners in order
  std::thread thread_;
};

// The SWIM member list as the gRPC messages carry it.
v1::MemberUpdate to_proto(const MemberUpdate& update);
MemberUpdate from_proto(const v1::MemberUpdate& update);

}  // namespace starling::cluster
