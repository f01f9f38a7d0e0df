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
