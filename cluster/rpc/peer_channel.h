// The gRPC channels this node dials its peers with, and the credentials of
// both ends: plain, or mutual TLS (--cluster-tls-*).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <variant>

#include <grpcpp/grpcpp.h>

namespace starling::cluster {

// To `address` ("host:port"), with `credentials` (null: plain). A peer that
// comes back is reached within about a second, not after gRPC's default
// reconnect backoff of up to two minutes.
std::shared_ptr<grpc::Channel> peer_channel(const std::string& address,
                                            const std::shared_ptr<grpc::ChannelCredentials>& credentials);

// Mutual TLS between nodes: each side shows a certificate chaining to the
// cluster's CA, and a node's certificate must name the host its peers dial.
struct PeerCredentials {
  std::shared_ptr<grpc::ChannelCredentials> channel;  // null: plain
  std::shared_ptr<grpc::ServerCredentials> server;
};
// From PEM files; all empty: plain. The error names the file that could not
// be read.
std::variant<PeerCredentials, std::string> load_peer_credentials(const std::filesystem::path& cert,
                                                                 const std::filesystem::path& key,
                                                                 const std::filesystem::path& ca);

}  // namespace starling::cluster
