#include "cluster/rpc/membership_service.h"

#include <utility>

#include "cluster/rpc/cluster_secret.h"

namespace starling::cluster {

MembershipService::MembershipService(std::string secret) : secret_{std::move(secret)} {}

Membership* MembershipService::serving(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor) {
  Membership* membership = membership_.load();
  if (!membership) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "starting"));
    return nullptr;
  }
  const bool admitted = cluster::admit(*context, *reactor, secret_,
                                      [membership](const std::string& peer) { membership->count_refused(peer); });
  return admitted ? membership : nullptr;
}

grpc::ServerUnaryReactor* MembershipService::Ping(grpc::CallbackServerContext* context,
                                                  const v1::PingRequest* request, v1::PingReply* reply) {
  // The reactor belongs to the context; gRPC frees it after Finish.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Membership* membership = serving(context, reactor);
  if (!membership) return reactor;
  *reply = membership->on_ping(*request);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* MembershipService::PingReq(grpc::CallbackServerContext* context,
                                                     const v1::PingReqRequest* request, v1::PingReply* reply) {
  // The reactor belongs to the context; gRPC frees it after Finish.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Membership* membership = serving(context, reactor);
  if (!membership) return reactor;
  // `reply` and `reactor` live until Finish, which the callback calls.
  membership->on_ping_req(*request, [reactor, reply](grpc::Status status, v1::PingReply answer) {
    if (status.ok()) *reply = std::move(answer);
    reactor->Finish(status);
  });
  return reactor;
}

grpc::ServerUnaryReactor* MembershipService::Sync(grpc::CallbackServerContext* context,
                                                  const v1::SyncRequest* request, v1::SyncReply* reply) {
  // The reactor belongs to the context; gRPC frees it after Finish.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Membership* membership = serving(context, reactor);
  if (!membership) return reactor;
  *reply = membership->on_sync(*request);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

PingResult ping_peer(const std::string& address, std::chrono::milliseconds deadline, const std::string& from_node,
                     std::uint64_t incarnation, const std::string& secret) {
  // TODO(cluster): mutual TLS (DESIGN.md "Cluster").
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::Membership::NewStub(channel);

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + deadline);
  attach_secret(context, secret);
  v1::PingRequest request;
  request.set_from_node(from_node);
  request.set_incarnation(incarnation);
  v1::PingReply reply;

  const grpc::Status status = stub->Ping(&context, request, &reply);
  if (!status.ok()) {
    PingResult result;
    result.code = status.error_code();
    result.error = "ping " + address + " failed: " + status.error_message();
    for (char& c : result.error) {
      if (c == '\n' || c == '\r') c = ' ';  // keep it one line for logs
    }
    return result;
  }
  return PingResult{PeerIdentity{reply.node_id(), reply.incarnation()}, grpc::StatusCode::OK, {}};
}

}  // namespace starling::cluster
