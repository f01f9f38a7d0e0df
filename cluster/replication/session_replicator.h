// The owner's side of session replication (broker::SessionReplication): for
// each persistent session of this node, the `replication-factor - 1` live
// members that keep a copy (replica_set.h), and the updates that keep the
// copies current (proto: Sessions.Replicate), sent to each member in order,
// one call at a time, batched while one is under way.
//
// A loop, woken by membership changes and every second, moves copies when
// the members change (a new replica is filled, a former one told to drop
// its copy), drops the copies of sessions that ended here, and adopts the
// copies this node holds of a dead member's sessions (pick_adopter: one
// survivor each), which then become this node's sessions and are copied on.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <grpcpp/security/credentials.h>
#include <prometheus/metric_family.h>
#include <spdlog/logger.h>

#include "broker/routing/forwarder.h"
#include "broker/session/session_registry.h"
#include "broker/session/session_replication.h"
#include "cluster/log_limit.h"
#include "cluster/membership/membership.h"
#include "proto/cluster.grpc.pb.h"

namespace starling::cluster {

struct ReplicationConfig {
  std::string node_id;
  size_t factor = 2;  // copies of a session, the owner's included
  std::string secret;
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // null: plain
  std::chrono::milliseconds call_timeout{2000};
};

class SessionReplicator final : public broker::SessionReplication {
 public:
  // `new_epoch`: a connect epoch newer than any this cluster gave out so
  // far, for a session adopted here.
  // `rejoined`: run on the loop's thread for a member back after it was
  // declared dead or gone (a partition healed): the two sides may both
  // have a copy of a session.
  // `forwarder`: when this node's routes are known everywhere (the first
  // pass waits for that before it asks copies what they have).
  SessionReplicator(ReplicationConfig config, Membership& membership, broker::Forwarder& forwarder,
                    std::function<uint64_t()> new_epoch, std::function<void(const Member&)> rejoined,
                    spdlog::logger& log);
  ~SessionReplicator() override;
  // Starts the loop once the sessions read from disk were checked against
  // the peers' (a stale one must not be copied out).
  void start(broker::SessionRegistry& sessions);
  void stop();
  // The first pass after start() is done: every session's copies were
  // opened again, and what they had that the sessions lacked is merged.
  bool resynced() const { return resynced_done_.load(); }
  // From the membership: wakes the loop.
  void member_changed(const Member& member, std::optional<MemberState> before);
  // `node` started anew: the next pass opens and fills the copies there again.
  void refill(const std::string& node);

  void recorded(const std::shared_ptr<broker::Session>& session, Done done) override;
  void released(const broker::Session& session, const broker::MessageId& id, uint16_t packet_id,
                Done done) override;
  void sent(const broker::Session& session, const broker::MessageId& id, uint16_t packet_id) override;
  void completed(const broker::Session& session, const broker::MessageId& id) override;
  std::vector<broker::MessageId> unconfirmed_completions(const broker::Session& session) const override;
  void inbound_qos2(const broker::Session& session, uint16_t packet_id, bool released, Done done) override;
  void queued(const broker::Session& session, const broker::Delivery& delivery, Done done) override;
  void will_changed(const broker::Session& session) override;

  // `owner` is back after it was gone (left, or declared dead): what this
  // node's copies of its sessions hold goes back to it, for what came only
  // to the copies meanwhile. Call once this node routes to it again.
  void send_copies_back(const Member& owner);
  // Whether a copy of `client_id`'s session that `node` sends back is
  // ignored: `node` was cut off (was_cut_off). The copy is stale: the client
  // completed messages here that it still holds, and it holds nothing
  // acknowledged that this node lacks, since this node kept a majority.
  bool refuses_copy_from(const std::string& node, const std::string& client_id);

  void collect_metrics(std::vector<prometheus::MetricFamily>& out) const;

 private:
  struct Pending {
    v1::ReplicaUpdate update;
    std::function<void(bool ok)> done;  // may be empty
  };
  // Updates for one member, in order; one call under way at most.
  struct Outbox {
    std::string address;
    std::shared_ptr<v1::Sessions::Stub> stub;
    std::deque<Pending> queue;
    bool busy = false;
    std::shared_ptr<const v1::ReplicateRequest> under_way;  // while busy
    uint64_t calls = 0;  // numbers them (ReplicateRequest.call)
    // The completions (`forget`) of calls that failed. A refill merges the
    // session into the copy and removes nothing, so they are sent again at
    // each pass while the member is up, and kept while it is gone (it may
    // come back with its copies: a healed partition); else a completed
    // message stays in the copy, and goes out twice if it is promoted or
    // sent back.
    std::vector<v1::ReplicaUpdate> unconfirmed;
  };
  struct Call;
  // Where a session's copies are: for its current session here.
  struct Placement {
    broker::SessionId generation = 0;
    std::vector<std::string> replicas;
  };

  // Members that count (alive or suspect), self included, by node id.
  std::map<std::string, std::string> members_now() const;
  std::vector<std::string> choose(const std::string& client_id, const std::map<std::string, std::string>& members)
      const;
  // Open, then (once the member answered) fill with what the session has
  // then; `done` after the fill was answered.
  // `send_back`: the member's reply brings what the copy has queued (merged
  // into the session: after a restart).
  // `reset`: the member drops a copy it kept from before (ReplicaOpen.reset).
  void copy_to(const std::string& node, const std::string& address, const std::shared_ptr<broker::Session>& session,
               const std::vector<std::string>& replicas, bool send_back, bool reset, std::function<void(bool)> done);
  // Whether `node` was cut off, not this node, so its copies from before
  // are stale: this node saw an alive majority as it declared `node` gone,
  // and no minority since. (Not an alive majority at every change since: a
  // node back from a partition spreads stale news of others' deaths, and
  // one is suspect for a moment.)
  bool was_cut_off(const std::string& node);
  void record(const std::shared_ptr<broker::Session>& session, Done done, bool send_back);
  // Queues `pending` for `node` (its address: empty when known already).
  void send(const std::string& node, const std::string& address, Pending pending);
  // The same with `pending` built under the lock that tell() queues under.
  void send(const std::string& node, const std::string& address, const std::function<Pending()>& build);
  // The next call for `box`, when none is under way (mu_ held); launch()
  // starts it, outside the lock.
  std::shared_ptr<Call> prepare_locked(const std::string& node, Outbox& box);
  void launch(std::shared_ptr<Call> call);
  void finished(const std::shared_ptr<Call>& call, const grpc::Status& status);
  // Sends the completions of failed calls again to the members in `members`.
  void resend_unconfirmed(const std::map<std::string, std::string>& members);
  // Records whether, by states_, this node sees more than half of the
  // members it counts (as Membership::has_quorum) alive, not only suspect
  // (majority_seen_at_, and returns true), or no more than half alive or
  // suspect (minority_seen_at_). loop_mu_ held.
  bool note_majority_locked(std::chrono::steady_clock::time_point now);
  void drop_at(const std::string& node, const std::string& client_id);
  // Adds to what the session's replicas are told: to the last update queued
  // for a replica when it is of the same kind and session, else in a new
  // one. `done` (may be empty) once every replica answered (at once with
  // none).
  void tell(const broker::Session& session, bool (v1::ReplicaUpdate::*same_kind)() const,
            const std::function<void(v1::ReplicaUpdate&)>& add, Done done = {});
  void loop();
  void pass();
  // Tells every member in `members` that this node confirms its copies
  // (begin, then end once every session was opened again).
  void resync(const std::map<std::string, std::string>& members, bool end);
  void adopt_orphans(const std::map<std::string, std::string>& members);
  // Copies read back from disk (SessionRegistry::dormant_copies): one a
  // live member has the session or a current copy of goes, and so does one
  // whose owner answered without it (the session ended there). One whose
  // owner is gone becomes this node's session when this node is the first
  // of the copy's replicas alive (or nobody took it for kOrphanWait).
  void settle_dormant(const std::map<std::string, std::string>& members);

  const ReplicationConfig config_;
  const uint64_t sender_;  // ReplicateRequest.sender: this start's
  Membership& membership_;
  broker::Forwarder& forwarder_;
  const std::function<uint64_t()> new_epoch_;
  const std::function<void(const Member&)> rejoined_hook_;
  spdlog::logger& log_;
  std::atomic<broker::SessionRegistry*> sessions_{nullptr};  // set by start()

  mutable std::mutex mu_;
  std::unordered_map<std::string, Placement> placed_;  // by client id
  std::unordered_map<std::string, Outbox> outboxes_;    // by node id
  size_t pending_updates_ = 0;                          // queued or under way, all members
  // Members whose updates failed: the next pass fills their copies again.
  std::unordered_set<std::string> dirty_;
  size_t calls_ = 0;  // under way
  std::condition_variable calls_cv_;
  bool stopping_calls_ = false;  // no new calls

  std::mutex loop_mu_;
  std::condition_variable loop_cv_;
  bool woken_ = false;
  std::vector<Member> rejoined_;  // guarded by loop_mu_
  // When each member was last declared dead or gone, and whether this node
  // saw an alive majority then. Guarded by loop_mu_.
  struct Gone {
    std::chrono::steady_clock::time_point at;
    bool majority = false;
  };
  std::unordered_map<std::string, Gone> gone_;
  // Each member's state as member_changed heard it, in order (not
  // Membership::members(), which may be ahead of the changes told so far).
  // Guarded by loop_mu_.
  std::unordered_map<std::string, MemberState> states_;
  // When this node last saw a majority, or a minority (note_majority_locked).
  // Guarded by loop_mu_. A copy got nothing acknowledged that its owner
  // lacks unless its node was on the side that kept a majority meanwhile.
  std::chrono::steady_clock::time_point majority_seen_at_;
  std::chrono::steady_clock::time_point minority_seen_at_;
  // For a member back after it was gone: whether this node saw a majority
  // meanwhile (decided before the return counted). Guarded by loop_mu_.
  std::unordered_map<std::string, bool> majority_while_gone_;
  bool stopping_ = false;
  std::thread thread_;
  // Touched by the loop only.
  bool resynced_ = false;
  // Since when this node has seen a quorum, pass after pass (none: not now).
  std::optional<std::chrono::steady_clock::time_point> quorum_since_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> orphan_since_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> dormant_since_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point next_dormant_check_;
  LogLimit failures_logged_{std::chrono::seconds(5)};
  LogLimit refusals_logged_{std::chrono::seconds(5)};

  std::atomic<bool> resynced_done_{false};
  std::atomic<uint64_t> updates_ok_{0};
  std::atomic<uint64_t> updates_failed_{0};
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> adopted_{0};
  std::atomic<uint64_t> copies_made_{0};  // a session copied to a member that had no copy of it
};

}  // namespace starling::cluster
