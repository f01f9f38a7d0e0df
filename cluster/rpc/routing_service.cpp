#include "cluster/rpc/routing_service.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <mutex>

#include <fmt/ranges.h>

#include "broker/mqtt/topic.h"
#include "broker/stored_message.h"
#include "cluster/routing/peer_link.h"
#include "cluster/rpc/cluster_secret.h"

namespace starling::cluster {
namespace {

// How long a route update's acknowledgement waits for this node's forwards
// under way (a peer that stopped reading must not hold it for long; the
// caller's call gives up after 2 s).
constexpr auto kForwardsBeforeRoutesWait = std::chrono::milliseconds(1000);

}  // namespace

RoutingService::RoutingService(std::string secret, RouteTable& routes, ClusterForwarder& forwarder,
                               RetainedVersions& retained, MovedSessions& moved, Relay relay, OnRefused refused,
                               spdlog::logger& log)
    : secret_(std::move(secret)),
      routes_(routes),
      forwarder_(forwarder),
      retained_(retained),
      moved_(moved),
      relay_(std::move(relay)),
      refused_(std::move(refused)),
      log_(log) {}

broker::SessionRegistry* RoutingService::serving(grpc::CallbackServerContext* context,
                                                 grpc::ServerUnaryReactor* reactor) {
  if (!admit(*context, *reactor, secret_, refused_)) return nullptr;
  broker::SessionRegistry* sessions = sessions_.load();
  if (!sessions) reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "not serving yet"));
  return sessions;
}

grpc::ServerUnaryReactor* RoutingService::UpdateRoutes(grpc::CallbackServerContext* context,
                                                       const v1::RouteUpdate* request, v1::RouteAck* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!admit(*context, *reactor, secret_, refused_)) return reactor;
  if (request->from_node().empty()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "from_node is empty"));
    return reactor;
  }
  RouteDelta d;
  d.epoch = request->epoch();
  d.from_version = request->from_version();
  d.to_version = request->to_version();
  d.snapshot = request->snapshot();
  d.added.assign(request->added().begin(), request->added().end());
  d.removed.assign(request->removed().begin(), request->removed().end());
  const bool applied = routes_.apply(request->from_node(), d) == RouteTable::Applied::kApplied;
  reply->set_need_snapshot(!applied);
  if (applied && !d.added.empty()) {
    // Acknowledged once whatever this node forwarded before knowing the new
    // routes has arrived where it went: a session moving to the caller is
    // released by its old node only after this, so nothing sent there
    // without the caller's routes comes after the release.
    forwarder_.after_forwards_answered(kForwardsBeforeRoutesWait, [reactor] { reactor->Finish(grpc::Status::OK); });
    return reactor;
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

// One peer's long-lived link: batches are read one after another and taken
// in order; each is answered when its outcome is known, in any order, one
// write at a time. Outcomes may come after the stream ended: they then find
// it gone (a weak pointer) and the peer, sending the batch again on a new
// stream, gets the answer there.
class RoutingService::ForwardStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                                            public std::enable_shared_from_this<ForwardStream> {
 public:
  ForwardStream(RoutingService& service, broker::SessionRegistry* sessions, std::string peer)
      : service_(service), sessions_(sessions), peer_(std::move(peer)) {}

  // Owns itself until gRPC is done with it.
  void begin(grpc::Status refusal) {
    self_ = shared_from_this();
    if (!refusal.ok()) {
      finish(std::move(refusal));
      return;
    }
    StartRead(&read_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the peer closed its side, or the stream broke
      bool idle = false;
      {
        std::lock_guard lock(mu_);
        reads_done_ = true;
        idle = !writing_;
      }
      if (idle) finish(grpc::Status::OK);
      return;
    }
    batch_.Clear();
    if (!grpc::SerializationTraits<v1::ForwardBatch>::Deserialize(&read_, &batch_).ok()) {
      service_.unreadable(peer_);
      finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a forwarded batch could not be read"));
      return;
    }
    const uint64_t sequence = batch_.sequence();
    auto [outcome, fresh] = service_.inbound_.receive(batch_.link_id(), sequence);
    if (fresh) {
      service_.forwarder_.counters_for(batch_.from_node())
          .received.fetch_add(static_cast<uint64_t>(batch_.messages_size()), std::memory_order_relaxed);
      service_.take(batch_, *sessions_, outcome);
    }
    outcome->when_complete([weak = weak_from_this(), sequence](const std::vector<uint32_t>& refused) {
      if (auto stream = weak.lock()) stream->answer(sequence, refused);
    });
    if (fresh) outcome->seal();
    StartRead(&read_);
  }

  void OnWriteDone(bool ok) override {
    bool more = false;
    bool idle = false;
    {
      std::lock_guard lock(mu_);
      acks_.pop_front();
      writing_ = ok && !acks_.empty();
      more = writing_;
      idle = !writing_ && (reads_done_ || !ok);
    }
    if (more) StartWrite(&acks_.front());
    if (idle) finish(ok ? grpc::Status::OK : grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
  }

  void OnDone() override {
    const auto last = std::move(self_);  // may be the last owner: nothing after this
  }

 private:
  void answer(uint64_t sequence, const std::vector<uint32_t>& refused) {
    {
      std::lock_guard lock(mu_);
      if (finished_ || reads_done_) return;
      v1::ForwardAck ack;
      ack.set_sequence(sequence);
      for (uint32_t i : refused) ack.add_refused(i);
      bool own = false;
      if (!grpc::SerializationTraits<v1::ForwardAck>::Serialize(ack, &acks_.emplace_back(), &own).ok()) {
        acks_.pop_back();  // cannot happen for a message this small; the peer asks again
        return;
      }
      if (writing_) return;  // OnWriteDone goes on with it
      writing_ = true;
    }
    // Only OnWriteDone pops the front, and a deque keeps its elements in place.
    StartWrite(&acks_.front());
  }

  void finish(grpc::Status status) {
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(std::move(status));
  }

  RoutingService& service_;
  broker::SessionRegistry* const sessions_;
  const std::string peer_;  // its address, for the log
  std::shared_ptr<ForwardStream> self_;
  grpc::ByteBuffer read_;   // only the reading side touches these two
  v1::ForwardBatch batch_;
  std::mutex mu_;
  std::deque<grpc::ByteBuffer> acks_;  // the front is being written while writing_
  bool writing_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
};

void RoutingService::unreadable(const std::string& peer) {
  if (!unreadable_log_.allow()) return;
  log_.warn("cluster: a forwarded batch from {} could not be read; its stream is ended", peer);
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* RoutingService::Forward(
    grpc::CallbackServerContext* context) {
  broker::SessionRegistry* sessions = sessions_.load();
  auto stream = std::make_shared<ForwardStream>(*this, sessions, context->peer());
  grpc::Status refusal = grpc::Status::OK;
  if (!admitted(*context, secret_, refused_)) {
    refusal = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong cluster secret");
  } else if (!sessions) {
    refusal = grpc::Status(grpc::StatusCode::UNAVAILABLE, "not serving yet");
  }
  stream->begin(std::move(refusal));
  return stream.get();
}

void RoutingService::take(const v1::ForwardBatch& batch, broker::SessionRegistry& sessions,
                          const std::shared_ptr<BatchOutcome>& outcome) {
  const broker::ClockPair now;
  for (int i = 0; i < batch.messages_size(); ++i) {
    const auto& f = batch.messages(i);
    const auto index = static_cast<uint32_t>(i);
    const bool acked = f.qos() > 0 || f.has_retained();
    const broker::MessagePtr message = from_forwarded(f, now);
    if (!message) {
      if (acked) outcome->refuse(index);
      continue;
    }
    const auto part = [outcome, index, acked](bool ok) { outcome->part_done(ok || !acked, index); };
    if (f.has_retained() && !f.retained().origin().empty()) {
      // Kept (and stored) before the answer when newer than what this node has.
      retained_.accept(
          f.topic(), RetainedVersion{f.retained().hlc(), f.retained().origin()},
          [&] {
            outcome->add_part();
            sessions.retain_forwarded(message, part);
          },
          /*cleared=*/f.payload().empty());
    }
    if (!f.replicate_only()) {
      outcome->add_part();
      const std::vector<std::string> groups(f.shared_groups().begin(), f.shared_groups().end());
      sessions.deliver_forwarded(message, groups, part);
      // Sent here by a peer that did not know yet that a session moved on.
      if (!moved_.any()) continue;
      const std::vector<std::string> delivered_to(f.delivered_to().begin(), f.delivered_to().end());
      for (const auto& relay : moved_.matching(message, batch.from_node(), delivered_to, sessions)) {
        if (relayed_log_.allow()) {
          log_.info("cluster: a message from {} (also sent to: {}) for client {}'s session came here after the "
                    "session moved to {}; it follows the session",
                    batch.from_node(), fmt::join(delivered_to, ","), relay.client_id, relay.node);
        }
        outcome->add_part();
        relay_(relay, part);
      }
    }
  }
}

grpc::ServerUnaryReactor* RoutingService::RetainedSnapshot(grpc::CallbackServerContext* context,
                                                           const v1::RetainedPageRequest* request,
                                                           v1::RetainedPage* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  broker::SessionRegistry* sessions = serving(context, reactor);
  if (!sessions) return reactor;
  const size_t limit = std::clamp<size_t>(request->limit(), 1, 1000);
  const broker::ClockPair now;
  // In topic order; a page starts after the last topic of the one before.
  const auto page = sessions->retained().page("#", request->after(), limit, now.steady);
  for (const auto& m : page.messages) {
    const ForwardMeta meta{/*deliver=*/false, retained_.version_of(m->topic).value_or(RetainedVersion{}), {}, {}};
    *reply->add_messages() = to_forwarded(*m, now, meta);
  }
  reply->set_more(page.more);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace starling::cluster
