#include "cluster/rpc/membership_service.h"

#include <utility>

#include "cluster/rpc/cluster_secret.h"

namespace starling::cluster {

MembershipService::MembershipService(std::string node_id, std::uint64_t incarnation, std::string secret)
    : node_id_{std::move(node_id)}, secret_{std::move(secret)}, incarnation_{incarnation} {}

grpc::ServerUnaryReactor* MembershipService::Ping(grpc::CallbackServerContext* context,
                                                  const v1::PingRequest* /*request*/,
                                                  v1::PingReply* reply) {
  // The reactor belongs to the context; gRPC frees it after Finish.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!carries_secret(*context, secret_)) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong cluster secret"));
    return reactor;
  }
  reply->set_node_id(node_id_);
  reply->set_incarnation(incarnation_.load(std::memory_order_relaxed));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

void MembershipService::set_incarnation(std::uint64_t incarnation) noexcept {
  incarnation_.store(incarnation, std::memory_order_relaxed);
}

std::uint64_t MembershipService::incarnation() const noexcept {
  return incarnation_.load(std::memory_order_relaxed);
}

PingResult ping_peer(const std::string& address, std::chrono::milliseconds deadline,
                     const std::string& from_node, std::uint64_t incarnation, const std::string& secret) {
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
