#include "cluster/rpc/routing_service.h"

#include <algorithm>
#include <mutex>

#include "broker/mqtt/topic.h"
#include "broker/stored_message.h"
#include "cluster/routing/peer_link.h"
#include "cluster/rpc/cluster_secret.h"

namespace starling::cluster {

RoutingService::RoutingService(std::string secret, RouteTable& routes, ClusterForwarder& forwarder,
                               RetainedVersions& retained, OnRefused refused)
    : secret_(std::move(secret)),
      routes_(routes),
      forwarder_(forwarder),
      retained_(retained),
      refused_(std::move(refused)) {}

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
  reply->set_need_snapshot(routes_.apply(request->from_node(), d) == RouteTable::Applied::kNeedSnapshot);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RoutingService::Forward(grpc::CallbackServerContext* context,
                                                  const v1::ForwardBatch* request, v1::ForwardAck* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  broker::SessionRegistry* sessions = serving(context, reactor);
  if (!sessions) return reactor;
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
  pending->left = 1;
  pending->reply = reply;
  pending->reactor = reactor;
  const broker::ClockPair now;
  for (int i = 0; i < request->messages_size(); ++i) {
    const auto& f = request->messages(i);
    const auto index = static_cast<uint32_t>(i);
    const bool acked = f.qos() > 0 || f.has_retained();
    const broker::MessagePtr message = from_forwarded(f, now);
    if (!message) {
      if (acked) pending->refuse(index);
      continue;
    }
    const auto part = [pending, index, acked](bool ok) {
      if (!ok && acked) pending->refuse(index);
      pending->finish_one();
    };
    if (f.has_retained() && !f.retained().origin().empty()) {
      // Kept (and stored) before the answer when newer than what this node has.
      retained_.accept(f.topic(), RetainedVersion{f.retained().hlc(), f.retained().origin()}, [&] {
        pending->left.fetch_add(1);
        sessions->retain_forwarded(message, part);
      });
    }
    if (!f.replicate_only()) {
      pending->left.fetch_add(1);
      const std::vector<std::string> groups(f.shared_groups().begin(), f.shared_groups().end());
      sessions->deliver_forwarded(message, groups, part);
    }
  }
  pending->finish_one();
  return reactor;
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
  for (const auto& m : sessions->retained().matching("#", now.steady)) {
    if (!request->after().empty() && m->topic <= request->after()) continue;
    if (static_cast<size_t>(reply->messages_size()) == limit) {
      reply->set_more(true);
      break;
    }
    auto* f = reply->add_messages();
    *f = to_forwarded(*m, now);
    f->set_replicate_only(true);
    const auto version = retained_.version_of(m->topic).value_or(RetainedVersion{});
    f->mutable_retained()->set_hlc(version.hlc);
    f->mutable_retained()->set_origin(version.origin);
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace starling::cluster
