#include "cluster/rpc/sessions_service.h"

#include "cluster/rpc/cluster_secret.h"
#include "cluster/sessions/session_transfer.h"

namespace starling::cluster {

grpc::ServerUnaryReactor* SessionsService::TakeSession(grpc::CallbackServerContext* context,
                                                       const v1::TakeSessionRequest* request,
                                                       v1::TakeSessionReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!admit(*context, *reactor, secret_, refused_)) return reactor;
  broker::SessionRegistry* sessions = sessions_.load();
  if (!sessions) {
    // Not serving: nothing of the client can be here yet.
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  if (!fence_.yield_to(request->client_id(), ConnectEpoch{request->epoch(), request->from_node()})) {
    reply->set_superseded(true);  // a newer CONNECT of the client is under way here
  } else {
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
    for (const auto& id : request->client_ids()) {
      if (auto epoch = sessions->connect_epoch_of(id)) {
        auto* found = reply->add_sessions();
        found->set_client_id(id);
        found->set_connect_epoch(*epoch);
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
  if (!sessions || !sessions->unroute_held(request->client_id(), request->epoch())) {
    reactor->Finish(grpc::Status::OK);  // not found
    return reactor;
  }
  // Its routes are gone; a message routed to it a moment before may still be
  // on its way into its queue (between routing and queuing on a worker): the
  // rest is taken a little later.
  forwarder_.after(std::chrono::milliseconds(50), [sessions, request, reply, reactor] {
    *reply = to_proto(sessions->release(request->client_id(), request->epoch()));
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

}  // namespace starling::cluster
