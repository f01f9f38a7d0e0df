#include "cluster/rpc/sessions_service.h"

#include "cluster/routing/peer_link.h"
#include "cluster/rpc/cluster_secret.h"
#include "cluster/sessions/session_transfer.h"

namespace starling::cluster {
grpc::ServerUnaryReactor* SessionsService::TakeSession(grpc::CallbackServerContext* context,
                                                       const v1::TakeSessionRequest* request,
                                                       v1::TakeSessionReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!admit(*context, *reactor, secret_, refused_)) return reactor;
  broker::SessionRegistry* sessions = sessions_.load();
  if (!sessions || !rules_.sessions_ready()) {
    // Starting (its sessions not read, checked against the peers' and
    // completed from their copies yet) or leaving: it cannot answer for
    // them. The asker counts it as not answering, and a CONNECT whose
    // session a copy says is here waits (owner_unanswered).
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "not serving sessions"));
    return reactor;
  }
  if (!rules_.member_alive(request->from_node())) {
    // Back from a restart, and not live here yet: this node would hand the
    // session over and then route nothing to it. Once it is, in a moment.
    reply->set_not_member_yet(true);
  } else if (!fence_.yield_to(request->client_id(), ConnectEpoch{request->epoch(), request->from_node()})) {
    reply->set_superseded(true);  // a newer CONNECT of the client is under way here
  } else if (auto copy = sessions->replica_of(request->client_id()); copy && rules_.member_alive(copy->owner)) {
    // Only a copy is here: the owner answers for the session (unless it is
    // the one asking, which has it).
    if (copy->owner != request->from_node()) reply->set_replica_of(copy->owner);
  } else if (auto dormant = sessions->dormant_of(request->client_id());
             !copy && dormant && !sessions->find(request->client_id())) {
    // Only a copy read back from disk, its owner gone: this node takes the
    // session over soon (SessionReplicator::settle_dormant), unless a peer
    // has it; until then the asker refuses the CONNECT for now.
    reply->set_replica_of(dormant->owner);
  } else {
    // A copy whose owner is gone becomes this node's session first (the
    // loop that adopts such copies may not have come to it yet).
    if (copy) sessions->promote(request->client_id(), rules_.new_epoch());
    // Held until released, it takes what comes meanwhile along itself.
    moved_.forget(request->client_id());
    *reply = to_proto(sessions->hand_over(request->client_id(), request->clean_start(), request->epoch()));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* SessionsService::FindSessions(grpc::CallbackServerContext* context,
                                                        const v1::FindSessionsRequest* request,
                                                        v1::FindSessionsReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!admit(*context, *reactor, secret_, refused_)) return reactor;
  if (request->client_ids_size() > kMaxFindSessions) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "more than 1,000 client ids"));
    return reactor;
  }
  if (broker::SessionRegistry* sessions = sessions_.load()) {
    for (int i = 0; i < request->client_ids_size(); ++i) {
      const std::string& id = request->client_ids(i);
      auto epoch = sessions->connect_epoch_of(id);
      if (epoch && i < request->connect_epochs_size() && *epoch < request->connect_epochs(i) &&
          sessions->drop_stale(id, *epoch, /*online_too=*/true)) {
        continue;  // the caller's copy is the client's
      }
      if (epoch) {
        auto* found = reply->add_sessions();
        found->set_client_id(id);
        found->set_connect_epoch(*epoch);
      } else if (request->copies_too() && sessions->replica_of(id)) {
        auto* found = reply->add_sessions();
        found->set_client_id(id);
        found->set_copy(true);
      }
    }
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* SessionsService::ReleaseSession(grpc::CallbackServerContext* context,
                                                          const v1::ReleaseSessionRequest* request,
                                                          v1::ReleaseSessionReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!admit(*context, *reactor, secret_, refused_)) return reactor;
  broker::SessionRegistry* sessions = sessions_.load();
  auto held = sessions ? sessions->unroute_held(request->client_id(), request->epoch()) : nullptr;
  if (!held) {
    reactor->Finish(grpc::Status::OK);  // not found
    return reactor;
  }
  // Its routes are gone; a message routed to it a moment before may still be
  // on its way into its queue (between routing and queuing on a worker): the
  // rest is taken once none is (bounded: the caller gives up after 2 s).
  forwarder_.when([held] { return !held->routes_under_way(); }, broker::Session::kUnderWayWait,
                  [this, held, sessions, request, reply, reactor] {
                    auto tail = sessions->release(request->client_id(), request->epoch());
                    // A peer's forward slower than its acknowledgement of the
                    // caller's routes may still come here: it follows.
                    if (tail) moved_.add(request->client_id(), request->from_node(), held->subscriptions());
                    *reply = to_proto(tail);
                    reactor->Finish(grpc::Status::OK);
                  });
  return reactor;
}

grpc::ServerUnaryReactor* SessionsService::Replicate(grpc::CallbackServerContext* context,
                                                     const v1::ReplicateRequest* request, v1::ReplicateReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!admit(*context, *reactor, secret_, refused_)) return reactor;
  broker::SessionRegistry* sessions = sessions_.load();
  if (!sessions) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "not serving yet"));
    return reactor;
  }
  const std::string& owner = request->from_node();
  // A copy never takes an update after one that followed it: a late call
  // could bring back a message a later one said the client completed.
  std::shared_ptr<CallOrder> order;
  std::unique_lock<std::mutex> in_order;
  if (request->call() != 0) {
    order = call_order(owner);
    in_order = std::unique_lock(order->mu);
    if (order->sender == request->sender() && request->call() <= order->last) {
      reactor->Finish(grpc::Status(grpc::StatusCode::ABORTED, "a later call came first"));
      return reactor;
    }
    order->sender = request->sender();
    order->last = request->call();
  }
  bool routes_added = false;
  bool written = false;  // answered once on disk: a publisher's acknowledgement waits
  for (const auto& update : request->updates()) {
    const std::string& client_id = update.client_id();
    switch (update.change_case()) {
      case v1::ReplicaUpdate::kOpen: {
        const auto& o = update.open();
        broker::SessionRegistry::ReplicaTerms terms;
        terms.owner = owner;
        terms.generation = o.generation();
        terms.expiry_interval = o.expiry_interval();
        terms.connect_epoch = o.connect_epoch();
        terms.subscriptions = parse_subscriptions(o.subscriptions());
        terms.replicas.assign(o.replicas().begin(), o.replicas().end());
        terms.will = parse_will(o.will());
        if (o.reset()) sessions->replica_drop(client_id, owner);
        const auto opened = sessions->replica_open(client_id, std::move(terms));
        routes_added = opened.routes_added || routes_added;
        // A session that moved (or an owner back from a restart): what the
        // copy got that the new session may lack goes back to it.
        if (!opened.refused && (o.send_back() || opened.owner_changed)) {
          auto* back = reply->add_sent_back();
          back->set_client_id(client_id);
          add_deliveries(*back->mutable_deliveries(), {}, sessions->replica_queue(client_id, owner));
        }
        break;
      }
      case v1::ReplicaUpdate::kFill: {
        std::vector<broker::Inflight> inflight;
        std::vector<broker::Delivery> queued;
        parse_deliveries(update.fill().deliveries(), inflight, queued);
        std::vector<uint16_t> inbound;
        for (uint32_t packet_id : update.fill().inbound_qos2()) {
          if (packet_id != 0 && packet_id <= 0xffff) inbound.push_back(static_cast<uint16_t>(packet_id));
        }
        sessions->replica_fill(client_id, owner, std::move(inflight), std::move(queued), inbound);
        break;
      }
      case v1::ReplicaUpdate::kQueued: {
        std::vector<broker::Inflight> inflight;
        std::vector<broker::Delivery> queued;
        parse_deliveries(update.queued().deliveries(), inflight, queued);
        sessions->replica_queued(client_id, owner, std::move(queued));
        written = true;
        break;
      }
      case v1::ReplicaUpdate::kInbound: {
        const auto& changes = update.inbound().changes();
        sessions->replica_inbound(client_id, owner, {changes.data(), static_cast<size_t>(changes.size())});
        break;
      }
      case v1::ReplicaUpdate::kForget: {
        std::vector<broker::MessageId> ids;
        ids.reserve(static_cast<size_t>(update.forget().ids_size()));
        for (const auto& id : update.forget().ids()) ids.push_back(message_id(id));
        sessions->replica_forget(client_id, owner, ids);
        break;
      }
      case v1::ReplicaUpdate::kReleased: {
        const auto& r = update.released();
        if (r.packet_id() == 0 || r.packet_id() > 0xffff) break;
        sessions->replica_released(client_id, owner, message_id(r.id()), static_cast<uint16_t>(r.packet_id()));
        break;
      }
      case v1::ReplicaUpdate::kWill:
        sessions->replica_will(client_id, owner, parse_will(update.will()));
        break;
      case v1::ReplicaUpdate::kDrop:
        sessions->replica_drop(client_id, owner);
        break;
      case v1::ReplicaUpdate::kSent: {
        const auto& sent = update.sent();
        for (int i = 0; i < sent.ids_size() && i < sent.packet_ids_size(); ++i) {
          const uint32_t packet_id = sent.packet_ids(i);
          if (packet_id == 0 || packet_id > 0xffff) continue;
          sessions->replica_sent(client_id, owner, message_id(sent.ids(i)), static_cast<uint16_t>(packet_id));
        }
        break;
      }
      case v1::ReplicaUpdate::kRelayed:
        merge_sent_back(*sessions, client_id, update.relayed().deliveries());
        written = true;  // the relayed message's publisher waits for it (MovedSessions)
        break;
      case v1::ReplicaUpdate::kSentBack:
        if (rules_.refuses_copies_from && rules_.refuses_copies_from(owner, client_id)) break;
        merge_sent_back(*sessions, client_id, update.sent_back().deliveries());
        break;
      case v1::ReplicaUpdate::kResync:
        if (!update.resync().end()) {
          sessions->unconfirm_replicas(owner);
          if (rules_.restarted) rules_.restarted(owner);
        } else {
          sessions->drop_unconfirmed_replicas(owner);
        }
        break;
      case v1::ReplicaUpdate::CHANGE_NOT_SET:
        break;
    }
  }
  // A copy newly subscribed answers once every node routes to it: the
  // owner's client is told of its SUBSCRIBE only then.
  auto finish = [reactor, written, sessions] {
    if (!written) return reactor->Finish(grpc::Status::OK);
    sessions->after_written([reactor](bool ok) {
      reactor->Finish(ok ? grpc::Status::OK : grpc::Status(grpc::StatusCode::UNAVAILABLE, "not stored"));
    });
  };
  if (!routes_added) {
    finish();
  } else {
    forwarder_.when_routes_known([finish](bool) { finish(); });
  }
  return reactor;
}

std::shared_ptr<SessionsService::CallOrder> SessionsService::call_order(const std::string& owner) {
  std::lock_guard lock(orders_mu_);
  auto& order = orders_[owner];
  if (!order) order = std::make_shared<CallOrder>();
  return order;
}

}  // namespace starling::cluster
