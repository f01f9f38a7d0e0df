#include "cluster/rpc/cluster_secret.h"

namespace starling::cluster {

void attach_secret(grpc::ClientContext& context, const std::string& secret) {
  if (!secret.empty()) context.AddMetadata(std::string{kSecretMetadataKey}, secret);
}

bool carries_secret(const grpc::ServerContextBase& context, std::string_view secret) {
  if (secret.empty()) return true;
  const auto& metadata = context.client_metadata();
  const auto range = metadata.equal_range(grpc::string_ref{kSecretMetadataKey.data(), kSecretMetadataKey.size()});
  if (range.first == range.second || std::next(range.first) != range.second) return false;  // none, or several
  const grpc::string_ref given = range.first->second;
  if (given.size() != secret.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < secret.size(); ++i) diff |= static_cast<unsigned char>(given.data()[i] ^ secret[i]);
  return diff == 0;
}

bool admitted(const grpc::CallbackServerContext& context, std::string_view secret, const OnRefused& refused) {
  if (carries_secret(context, secret)) return true;
  if (refused) refused(context.peer());
  return false;
}

bool admit(grpc::CallbackServerContext& context, grpc::ServerUnaryReactor& reactor, std::string_view secret,
           const OnRefused& refused) {
  if (admitted(context, secret, refused)) return true;
  reactor.Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong cluster secret"));
  return false;
}

}  // namespace starling::cluster
