// The shared cluster secret (--cluster-secret) that every node-to-node call
// carries in its metadata; a call without it, or with another, is refused
// with UNAUTHENTICATED before it does anything.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include <grpcpp/client_context.h>
#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

namespace starling::cluster {

inline constexpr std::string_view kSecretMetadataKey = "x-starling-secret";

// Adds the secret to an outgoing call (nothing when the secret is empty).
void attach_secret(grpc::ClientContext& context, const std::string& secret);

// Whether an incoming call carries `secret` (any call, when it is empty).
// Compares every byte, so the time taken says little about a guess.
bool carries_secret(const grpc::ServerContextBase& context, std::string_view secret);

// Hears of each refused call (to count and log it), with the caller's address.
using OnRefused = std::function<void(const std::string& peer)>;
// Whether the call carries the secret; if not, `refused` (if set) is told.
bool admitted(const grpc::CallbackServerContext& context, std::string_view secret, const OnRefused& refused);
// For a unary call: true when it may go on; otherwise it is finished with UNAUTHENTICATED
// and `refused` (if set) is told. Every service's calls start here.
bool admit(grpc::CallbackServerContext& context, grpc::ServerUnaryReactor& reactor, std::string_view secret,
           const OnRefused& refused);

}  // namespace starling::cluster
