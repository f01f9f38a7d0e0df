// Session takeover across nodes: a CONNECT on this node asks every other
// live node to close the client's connection there and hand its session
// over (rpc/sessions_service.h answers on the other side).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <grpcpp/security/credentials.h>

#include "broker/session/session_registry.h"
#include "cluster/membership/swim.h"
#include "cluster/sessions/connect_fence.h"
#include "proto/cluster.grpc.pb.h"

namespace starling::cluster {

// A session's subscriptions and deliveries as they travel between nodes
// (taken over, or copied to a replica). In-flight deliveries carry their
// packet id; parse_ leaves out what is damaged.
void add_subscriptions(google::protobuf::RepeatedPtrField<v1::HandedSubscription>& out,
                       const std::vector<std::pair<std::string, broker::SubscriptionRecord>>& subscriptions);
std::vector<std::pair<std::string, broker::SubscriptionRecord>> parse_subscriptions(
    const google::protobuf::RepeatedPtrField<v1::HandedSubscription>& in);
void add_deliveries(google::protobuf::RepeatedPtrField<v1::HandedDelivery>& out,
                    const std::vector<broker::Inflight>& inflight, const std::vector<broker::Delivery>& queued);
void parse_deliveries(const google::protobuf::RepeatedPtrField<v1::HandedDelivery>& in,
                      std::vector<broker::Inflight>& inflight, std::vector<broker::Delivery>& queued);

// The will a copy keeps (Session::copied_will); parse_will gives nullopt for
// none, or for a damaged one. Its message is this node's to publish.
void set_will(v1::ReplicaWill& out, const std::optional<broker::WillRecord>& will);
std::optional<broker::WillRecord> parse_will(const v1::ReplicaWill& in);

// What a copy sent back to its owner (a Replicate update or reply): merged
// into the client's session here; returns how many messages it lacked.
size_t merge_sent_back(broker::SessionRegistry& sessions, const std::string& client_id,
                       const google::protobuf::RepeatedPtrField<v1::HandedDelivery>& deliveries);

// A message that reached this node after `client_id`'s session moved to
// `peer` (MovedSessions): the peer queues it unless the session has it.
// `done(true)` once it is on the peer's disk; false when the peer did not
// answer in time.
void relay_to_peer(const Member& peer, const std::string& self_id, const std::string& secret,
                   const std::shared_ptr<grpc::ChannelCredentials>& credentials, const std::string& client_id,
                   const broker::Delivery& delivery, std::chrono::milliseconds timeout,
                   std::function<void(bool)> done);

v1::TakeSessionReply to_proto(const std::optional<broker::HandedSession>& handed);
// nullopt when the reply says the peer had nothing; a damaged delivery is
// left out.
std::optional<broker::HandedSession> from_proto(const v1::TakeSessionReply& reply);

v1::ReleaseSessionReply to_proto(const std::optional<std::vector<broker::Delivery>>& tail);
std::vector<broker::Delivery> from_proto(const v1::ReleaseSessionReply& reply);

struct TakeoverStats {
  std::atomic<uint64_t> taken{0};   // sessions (or connections) another node had
  std::atomic<uint64_t> failed{0};  // a live peer did not answer in time
  std::atomic<uint64_t> refused{0};  // this CONNECT lost to a newer one elsewhere
};

// Asks every peer in `peers` at once; `done` runs (on a gRPC thread, or at
// once when there are none) when all answered or `timeout` passed. A peer
// that does not answer is counted and logged; what the others handed is used.
struct PeersAnswer {
  bool superseded = false;  // a peer has a newer CONNECT of the client under way
  std::string not_member_yet;  // a peer that does not see this node as live yet (TakeSessionReply)
  std::optional<broker::HandedSession> handed;
  std::string held_by;  // the peer that holds the session until released (HandedSession::held)
  // Owners of the client's session that peers hold only copies of
  // (TakeSessionReply.replica_of), and the peers that did not answer.
  std::vector<std::string> replica_owners;
  std::vector<std::string> unanswered;
};
// `secret` and `credentials`: how peers are called (PeerCredentials::channel).
void take_from_peers(const std::vector<Member>& peers, const std::string& secret,
                     const std::shared_ptr<grpc::ChannelCredentials>& credentials, const std::string& client_id,
                     bool clean_start, const ConnectEpoch& epoch, std::chrono::milliseconds timeout,
                     TakeoverStats& stats, spdlog::logger& log, std::function<void(PeersAnswer)> done);

// At most this many client ids per FindSessions call.
constexpr int kMaxFindSessions = 1000;

// Which of `sessions` (client id, connect epoch here) `peer` holds a copy
// of with a newer connect epoch: sessions that moved on while this node
// was down. nullopt when the peer could not be asked. Blocking.
std::optional<std::vector<std::pair<std::string, uint64_t>>> find_moved_sessions(
    const Member& peer, const std::string& secret, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    const std::vector<std::pair<std::string, uint64_t>>& sessions, const std::string& self);

// Which of `client_ids` `peer` holds a session of, or a current copy of a
// session another node owns. nullopt when the peer could not be asked.
// Blocking.
std::optional<std::vector<std::string>> find_held_sessions(const Member& peer, const std::string& secret,
                                                           const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                                                           const std::vector<std::string>& client_ids,
                                                           const std::string& self);

// Asks `peer`, which held a session it handed over, for what it queued
// since; `done` gets it (nothing when the call failed: logged) on a gRPC
// thread.
void release_from_peer(const Member& peer, const std::string& secret,
                       const std::shared_ptr<grpc::ChannelCredentials>& credentials, const std::string& client_id,
                       const ConnectEpoch& epoch, std::chrono::milliseconds timeout, spdlog::logger& log,
                       std::function<void(std::vector<broker::Delivery>)> done);

}  // namespace starling::cluster
