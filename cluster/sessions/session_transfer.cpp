#include "cluster/sessions/session_transfer.h"

#include <atomic>
#include <functional>
#include <memory>
#include <unordered_map>

#include "broker/stored_message.h"
#include "cluster/routing/peer_link.h"
#include "cluster/rpc/async_call.h"
#include "cluster/rpc/cluster_secret.h"
#include "cluster/rpc/peer_channel.h"

namespace starling::cluster {

namespace {

v1::HandedDelivery* add_delivery(google::protobuf::RepeatedPtrField<v1::HandedDelivery>& out,
                                 const broker::Delivery& d, const broker::ClockPair& now) {
  auto* h = out.Add();
  *h->mutable_message() = to_forwarded(*d.message, now);
  h->set_qos(static_cast<uint32_t>(d.qos));
  h->set_retain(d.retain);
  for (uint32_t id : d.subscription_ids) h->add_subscription_ids(id);
  h->set_dup(d.dup);
  return h;
}

// nullopt for a damaged delivery (left out).
std::optional<broker::Delivery> to_delivery(const v1::HandedDelivery& h, const broker::ClockPair& now) {
  auto message = from_forwarded(h.message(), now);
  if (!message || h.qos() > 2) return std::nullopt;
  broker::Delivery d;
  d.message = std::move(message);
  d.qos = static_cast<mqtt::QoS>(h.qos());
  d.retain = h.retain();
  d.subscription_ids.assign(h.subscription_ids().begin(), h.subscription_ids().end());
  d.dup = h.dup();
  return d;
}

template <typename Request, typename Reply>
using SessionsCall = AsyncCall<v1::Sessions::Stub, Request, Reply>;

// A call to `peer`'s Sessions service, with its deadline and the secret.
template <typename Request, typename Reply>
std::shared_ptr<SessionsCall<Request, Reply>> sessions_call(const Member& peer, const std::string& secret,
                                                            const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                                                            std::chrono::milliseconds timeout) {
  auto call = std::make_shared<SessionsCall<Request, Reply>>();
  call->stub = v1::Sessions::NewStub(peer_channel(peer.address, credentials));
  call->context.set_deadline(std::chrono::system_clock::now() + timeout);
  attach_secret(call->context, secret);
  return call;
}

}  // namespace

void add_subscriptions(google::protobuf::RepeatedPtrField<v1::HandedSubscription>& out,
                       const std::vector<std::pair<std::string, broker::SubscriptionRecord>>& subscriptions) {
  for (const auto& [filter, record] : subscriptions) {
    auto* s = out.Add();
    s->set_filter(filter);
    s->set_options(mqtt::options_byte(record.options));
    s->set_identifier(record.subscription_id);
  }
}

std::vector<std::pair<std::string, broker::SubscriptionRecord>> parse_subscriptions(
    const google::protobuf::RepeatedPtrField<v1::HandedSubscription>& in) {
  std::vector<std::pair<std::string, broker::SubscriptionRecord>> out;
  for (const auto& s : in) {
    auto options = mqtt::parse_options_byte(static_cast<uint8_t>(s.options()));
    if (!options || s.options() > 0xff || !mqtt::validate_topic_filter(s.filter())) continue;
    out.emplace_back(s.filter(), broker::SubscriptionRecord{*options, s.identifier()});
  }
  return out;
}

void add_deliveries(google::protobuf::RepeatedPtrField<v1::HandedDelivery>& out,
                    const std::vector<broker::Inflight>& inflight, const std::vector<broker::Delivery>& queued) {
  const broker::ClockPair now;
  for (const auto& in : inflight) {
    auto* h = add_delivery(out, in.delivery, now);
    h->set_dup(true);
    h->set_packet_id(in.packet_id);
    h->set_released(in.released);
  }
  for (const auto& d : queued) add_delivery(out, d, now);
}

void parse_deliveries(const google::protobuf::RepeatedPtrField<v1::HandedDelivery>& in,
                      std::vector<broker::Inflight>& inflight, std::vector<broker::Delivery>& queued) {
  const broker::ClockPair now;
  for (const auto& h : in) {
    auto d = to_delivery(h, now);
    if (!d) continue;
    if (h.packet_id() != 0 && h.packet_id() <= 0xffff && d->qos != mqtt::QoS::k0) {
      const bool released = h.released() && d->qos == mqtt::QoS::k2;
      inflight.push_back(broker::Inflight{static_cast<uint16_t>(h.packet_id()), std::move(*d), released, false});
    } else {
      queued.push_back(std::move(*d));
    }
  }
}

void set_will(v1::ReplicaWill& out, const std::optional<broker::WillRecord>& will) {
  out.Clear();
  if (!will || !will->message) return;
  *out.mutable_message() = to_forwarded(*will->message, broker::ClockPair{});
  out.set_delay(will->delay_s);
}

std::optional<broker::WillRecord> parse_will(const v1::ReplicaWill& in) {
  if (!in.has_message()) return std::nullopt;
  auto message = from_forwarded(in.message(), broker::ClockPair{});
  if (!message) return std::nullopt;
  // Published here as the client's (forwarded on to the other nodes), not
  // as a message a peer forwarded.
  auto own = std::make_shared<broker::Message>(*message);
  own->from_peer = false;
  return broker::WillRecord{std::move(own), in.delay()};
}

size_t merge_sent_back(broker::SessionRegistry& sessions, const std::string& client_id,
                       const google::protobuf::RepeatedPtrField<v1::HandedDelivery>& deliveries) {
  std::vector<broker::Inflight> inflight;  // a copy sends only what is queued
  std::vector<broker::Delivery> queued;
  parse_deliveries(deliveries, inflight, queued);
  return sessions.merge_from_replica(client_id, std::move(queued));
}

v1::TakeSessionReply to_proto(const std::optional<broker::HandedSession>& handed) {
  v1::TakeSessionReply reply;
  if (!handed) return reply;
  reply.set_found(true);
  reply.set_handed(handed->resumed);
  reply.set_held(handed->held);
  reply.set_connect_epoch(handed->connect_epoch);
  add_subscriptions(*reply.mutable_subscriptions(), handed->subscriptions);
  add_deliveries(*reply.mutable_deliveries(), handed->inflight, handed->deliveries);
  for (uint16_t id : handed->inbound_qos2) reply.add_inbound_qos2(id);
  for (const auto& id : handed->completed) set_message_id(*reply.add_completed(), id);
  return reply;
}

std::optional<broker::HandedSession> from_proto(const v1::TakeSessionReply& reply) {
  if (!reply.found()) return std::nullopt;
  broker::HandedSession handed;
  handed.resumed = reply.handed();
  handed.held = reply.held();
  handed.connect_epoch = reply.connect_epoch();
  handed.subscriptions = parse_subscriptions(reply.subscriptions());
  parse_deliveries(reply.deliveries(), handed.inflight, handed.deliveries);
  for (uint32_t id : reply.inbound_qos2()) {
    if (id != 0 && id <= 0xffff) handed.inbound_qos2.push_back(static_cast<uint16_t>(id));
  }
  for (const auto& id : reply.completed()) handed.completed.push_back(message_id(id));
  return handed;
}

v1::ReleaseSessionReply to_proto(const std::optional<std::vector<broker::Delivery>>& tail) {
  v1::ReleaseSessionReply reply;
  if (!tail) return reply;
  reply.set_found(true);
  const broker::ClockPair now;
  for (const auto& d : *tail) add_delivery(*reply.mutable_deliveries(), d, now);
  return reply;
}

std::vector<broker::Delivery> from_proto(const v1::ReleaseSessionReply& reply) {
  std::vector<broker::Delivery> tail;
  const broker::ClockPair now;
  for (const auto& h : reply.deliveries()) {
    if (auto d = to_delivery(h, now)) tail.push_back(std::move(*d));
  }
  return tail;
}

namespace {

// FindSessions for `count` client ids, kMaxFindSessions a call: `add(request,
// i)` puts the i-th in; `found` gets each session reported. False when the
// peer did not answer.
bool find_sessions(const Member& peer, const std::string& secret,
                   const std::shared_ptr<grpc::ChannelCredentials>& credentials, const std::string& self,
                   size_t count, bool copies_too, const std::function<void(v1::FindSessionsRequest&, size_t)>& add,
                   const std::function<void(const v1::FoundSession&)>& found) {
  auto stub = v1::Sessions::NewStub(peer_channel(peer.address, credentials));
  for (size_t start = 0; start < count; start += kMaxFindSessions) {
    v1::FindSessionsRequest request;
    request.set_from_node(self);
    request.set_copies_too(copies_too);
    const size_t end = std::min(count, start + static_cast<size_t>(kMaxFindSessions));
    for (size_t i = start; i < end; ++i) add(request, i);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    attach_secret(context, secret);
    v1::FindSessionsReply reply;
    if (!stub->FindSessions(&context, request, &reply).ok()) return false;
    for (const auto& session : reply.sessions()) found(session);
  }
  return true;
}

}  // namespace

std::optional<std::vector<std::pair<std::string, uint64_t>>> find_moved_sessions(
    const Member& peer, const std::string& secret, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    const std::vector<std::pair<std::string, uint64_t>>& sessions, const std::string& self) {
  std::unordered_map<std::string_view, uint64_t> here;
  for (const auto& [id, epoch] : sessions) here.emplace(id, epoch);
  std::vector<std::pair<std::string, uint64_t>> moved;
  const bool answered = find_sessions(
      peer, secret, credentials, self, sessions.size(), /*copies_too=*/false,
      [&](v1::FindSessionsRequest& request, size_t i) {
        request.add_client_ids(sessions[i].first);
        request.add_connect_epochs(sessions[i].second);
      },
      [&](const v1::FoundSession& found) {
        auto it = here.find(found.client_id());
        if (it != here.end() && found.connect_epoch() > it->second) moved.emplace_back(it->first, it->second);
      });
  if (!answered) return std::nullopt;
  return moved;
}

std::optional<std::vector<std::string>> find_held_sessions(const Member& peer, const std::string& secret,
                                                           const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                                                           const std::vector<std::string>& client_ids,
                                                           const std::string& self) {
  std::vector<std::string> held;
  const bool answered = find_sessions(
      peer, secret, credentials, self, client_ids.size(), /*copies_too=*/true,
      [&](v1::FindSessionsRequest& request, size_t i) { request.add_client_ids(client_ids[i]); },
      [&](const v1::FoundSession& found) { held.push_back(found.client_id()); });
  if (!answered) return std::nullopt;
  return held;
}

void relay_to_peer(const Member& peer, const std::string& self_id, const std::string& secret,
                   const std::shared_ptr<grpc::ChannelCredentials>& credentials, const std::string& client_id,
                   const broker::Delivery& delivery, std::chrono::milliseconds timeout,
                   std::function<void(bool)> done) {
  auto call = sessions_call<v1::ReplicateRequest, v1::ReplicateReply>(peer, secret, credentials, timeout);
  call->request.set_from_node(self_id);
  auto* update = call->request.add_updates();
  update->set_client_id(client_id);
  add_deliveries(*update->mutable_relayed()->mutable_deliveries(), {}, {delivery});
  call->stub->async()->Replicate(&call->context, &call->request, &call->reply,
                                 [call, done = std::move(done)](const grpc::Status& status) { done(status.ok()); });
}

void release_from_peer(const Member& peer, const std::string& secret,
                       const std::shared_ptr<grpc::ChannelCredentials>& credentials, const std::string& client_id,
                       const ConnectEpoch& epoch, std::chrono::milliseconds timeout, spdlog::logger& log,
                       std::function<void(std::vector<broker::Delivery>)> done) {
  auto call = sessions_call<v1::ReleaseSessionRequest, v1::ReleaseSessionReply>(peer, secret, credentials, timeout);
  call->request.set_from_node(epoch.node);
  call->request.set_client_id(client_id);
  call->request.set_epoch(epoch.hlc);
  call->stub->async()->ReleaseSession(
      &call->context, &call->request, &call->reply,
      [call, peer_id = peer.node_id, client_id, &log, done = std::move(done)](const grpc::Status& status) {
        if (!status.ok()) {
          log.warn("cluster: {} did not release client {}'s session: {}; what it queued meanwhile stays there",
                   peer_id, client_id, status.error_message());
        } else if (!call->reply.found()) {
          log.warn("cluster: {} no longer held client {}'s session", peer_id, client_id);
        }
        done(status.ok() ? from_proto(call->reply) : std::vector<broker::Delivery>{});
      });
}

void take_from_peers(const std::vector<Member>& peers, const std::string& secret,
                     const std::shared_ptr<grpc::ChannelCredentials>& credentials, const std::string& client_id,
                     bool clean_start, const ConnectEpoch& epoch, std::chrono::milliseconds timeout,
                     TakeoverStats& stats, spdlog::logger& log, std::function<void(PeersAnswer)> done) {
  if (peers.empty()) {
    done(PeersAnswer{});
    return;
  }
  struct Call {
    std::string peer_id;
    grpc::ClientContext context;
    v1::TakeSessionRequest request;
    v1::TakeSessionReply reply;
    std::unique_ptr<v1::Sessions::Stub> stub;
    grpc::Status status;
  };
  // The last answer (each call ends by its deadline) puts them together.
  struct Shared {
    std::atomic<size_t> left{0};
    std::vector<std::shared_ptr<Call>> calls;
    std::string client_id;
    TakeoverStats* stats = nullptr;
    spdlog::logger* log = nullptr;
    std::function<void(PeersAnswer)> done;
    void finish() {
      PeersAnswer answer;
      for (const auto& call : calls) {
        if (!call->status.ok()) {
          stats->failed.fetch_add(1, std::memory_order_relaxed);
          log->warn("cluster: {} did not answer for client {}'s session: {}", call->peer_id, client_id,
                   call->status.error_message());
          answer.unanswered.push_back(call->peer_id);
          continue;
        }
        if (!call->reply.replica_of().empty()) answer.replica_owners.push_back(call->reply.replica_of());
        if (call->reply.superseded()) {
          answer.superseded = true;
          continue;
        }
        if (call->reply.not_member_yet()) {
          answer.not_member_yet = call->peer_id;
          continue;
        }
        auto handed = from_proto(call->reply);
        if (!handed) continue;
        stats->taken.fetch_add(1, std::memory_order_relaxed);
        log->info("cluster: client {} taken over from {}{}", client_id, call->peer_id,
                 handed->resumed ? " with its session" : "");
        // Only one node should have had it. Should two (one back from a
        // partition or a restart with an older copy), the one a CONNECT or
        // an adoption opened last is the client's.
        if (!answer.handed || handed->connect_epoch > answer.handed->connect_epoch) {
          answer.held_by = handed->held ? call->peer_id : std::string{};
          answer.handed = std::move(handed);
        }
      }
      done(std::move(answer));
    }
  };
  auto shared = std::make_shared<Shared>();
  shared->left = peers.size();
  shared->client_id = client_id;
  shared->stats = &stats;
  shared->log = &log;
  shared->done = std::move(done);
  for (const auto& peer : peers) {
    auto call = std::make_shared<Call>();
    call->peer_id = peer.node_id;
    call->stub = v1::Sessions::NewStub(peer_channel(peer.address, credentials));
    call->request.set_from_node(epoch.node);
    call->request.set_client_id(client_id);
    call->request.set_clean_start(clean_start);
    call->request.set_epoch(epoch.hlc);
    call->context.set_deadline(std::chrono::system_clock::now() + timeout);
    attach_secret(call->context, secret);
    shared->calls.push_back(call);
  }
  // Every call is in the list before the first can finish.
  for (const auto& call : std::vector(shared->calls)) {
    call->stub->async()->TakeSession(&call->context, &call->request, &call->reply,
                                     [shared, call](grpc::Status status) {
                                       call->status = std::move(status);
                                       if (shared->left.fetch_sub(1) == 1) shared->finish();
                                     });
  }
}

}  // namespace starling::cluster
