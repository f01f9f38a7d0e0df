#include "cluster/rpc/membership_service.h"

#include <utility>

namespace starling::cluster {

MembershipService::MembershipService(std::string node_id, std::uint64_t incarnation)
    : node_id_{std::move(node_id)}, incarnation_{incarnation} {}

grpc::ServerUnaryReactor* MembershipService::Ping(grpc::CallbackServerContext* context,
                                                  const v1::PingRequest* /*request*/,
                                                  v1::PingReply* reply) {
  reply->set_node_id(node_id_);
  reply->set_incarnation(incarnation_.load(std::memory_order_relaxed));
  // The reactor belongs to the context; gRPC frees it after Finish.
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
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
                     const std::string& from_node, std::uint64_t incarnation) {
  // TODO(cluster): mutual TLS and the cluster secret (DESIGN.md "Cluster").
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::Membership::NewStub(channel);

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + deadline);
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
