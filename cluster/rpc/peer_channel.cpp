#include "cluster/rpc/peer_channel.h"

#include <fstream>
#include <sstream>

namespace starling::cluster {

std::shared_ptr<grpc::Channel> peer_channel(const std::string& address,
                                            const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  return grpc::CreateCustomChannel(address, credentials ? credentials : grpc::InsecureChannelCredentials(), args);
}

namespace {

bool read_file(const std::filesystem::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  out = text.str();
  return in.good() || in.eof();
}

}  // namespace

std::variant<PeerCredentials, std::string> load_peer_credentials(const std::filesystem::path& cert,
                                                                 const std::filesystem::path& key,
                                                                 const std::filesystem::path& ca) {
  if (cert.empty() && key.empty() && ca.empty()) {
    return PeerCredentials{nullptr, grpc::InsecureServerCredentials()};
  }
  std::string cert_pem, key_pem, ca_pem;
  for (const auto& [path, out] : {std::pair{&cert, &cert_pem}, {&key, &key_pem}, {&ca, &ca_pem}}) {
    if (!read_file(*path, *out) || out->empty()) return "cannot read \"" + path->string() + "\"";
  }
  grpc::SslCredentialsOptions client;
  client.pem_root_certs = ca_pem;
  client.pem_private_key = key_pem;
  client.pem_cert_chain = cert_pem;
  grpc::SslServerCredentialsOptions server(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  server.pem_root_certs = ca_pem;
  server.pem_key_cert_pairs.push_back({key_pem, cert_pem});
  return PeerCredentials{grpc::SslCredentials(client), grpc::SslServerCredentials(server)};
}

}  // namespace starling::cluster
