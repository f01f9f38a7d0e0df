// The gRPC channel this node dials a peer with.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

namespace starling::cluster {

// To `address` ("host:port"). A peer that comes back is reached within about
// a second, not after gRPC's default reconnect backoff of up to two minutes.
std::shared_ptr<grpc::Channel> peer_channel(const std::string& address);

}  // namespace starling::cluster
