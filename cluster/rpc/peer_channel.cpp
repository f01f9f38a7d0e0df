#include "cluster/rpc/peer_channel.h"

namespace starling::cluster {

std::shared_ptr<grpc::Channel> peer_channel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  // TODO(cluster): mutual TLS (DESIGN.md "Cluster").
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace starling::cluster
