#include "cluster/rpc/routing_service.h"

#include <mutex>

#include "broker/mqtt/topic.h"
#include "broker/stored_message.h"
#include "cluster/rpc/cluster_secret.h"

namespace starling::cluster {

RoutingService::RoutingService(std::string secret, RouteTable& routes, ClusterForwarder& forwarder, Refused refused)
    : secret_(std::move(secret)), routes_(routes), forwarder_(forwarder), refused_(std::move(refused)) {}

bool RoutingService::admit(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor) {
  if (carries_secret(*context, secret_)) return true;
  if (refused_) refused_(context->peer());
  reactor->Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong cluster secret"));
  return false;
}

grpc::ServerUnaryReactor* RoutingService::UpdateRoutes(grpc::CallbackServerContext* context,
                                                       const v1::RouteUpdate* request, v1::RouteAck* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!admit(context, reactor)) return reactor;
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
  reply->set_need_snapshot(routes_.apply(request->from_node(), d) == RouteTable::Applied::kNeedSnapshot);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RoutingService::Forward(grpc::CallbackServerContext* context,
                                                  const v1::ForwardBatch* request, v1::ForwardAck* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!admit(context, reactor)) return reactor;
  broker::SessionRegistry* sessions = sessions_.load();
  if (!sessions) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "not serving yet"));
    return reactor;
  }
  forwarder_.counters_for(request->from_node())
      .received.fetch_add(static_cast<uint64_t>(request->messages_size()), std::memory_order_relaxed);

  // Answered once every message is queued here (stored where it must be):
  // the last of the callbacks, or this function, finishes the call.
  struct Pending {
    std::atomic<size_t> left;
    std::mutex mu;
    v1::ForwardAck* reply;
    grpc::ServerUnaryReactor* reactor;
    void refuse(uint32_t index) {
      std::lock_guard lock(mu);
      reply->add_refused(index);
    }
    void finish_one() {
      if (left.fetch_sub(1) == 1) reactor->Finish(grpc::Status::OK);
    }
  };
  auto pending = std::make_shared<Pending>();
  pending->left = static_cast<size_t>(request->messages_size()) + 1;
  pending->reply = reply;
  pending->reactor = reactor;
  const broker::ClockPair now;
  for (int i = 0; i < request->messages_size(); ++i) {
    const auto& f = request->messages(i);
    const auto index = static_cast<uint32_t>(i);
    const bool acked = f.qos() > 0;
    // A peer's message is checked as a client's would be: garbage goes no
    // further than this call.
    broker::MessagePtr message;
    if (f.qos() <= 2 && mqtt::validate_topic_name(f.topic())) {
      message = broker::from_stored(storage::StoredMessage{f.topic(), f.payload(), static_cast<uint8_t>(f.qos()),
                                                           f.retain(), f.properties(), f.expires_at_ms()},
                                    now, /*from_peer=*/true);
    }
    if (!message) {
      if (acked) pending->refuse(index);
      pending->finish_one();
      continue;
    }
    sessions->deliver_forwarded(message, [pending, index, acked](bool ok) {
      if (!ok && acked) pending->refuse(index);
      pending->finish_one();
    });
  }
  pending->finish_one();
  return reactor;
}

}  // namespace starling::cluster
