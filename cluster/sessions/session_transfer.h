// Session takeover across nodes: a CONNECT on this node asks every other
// live node to close the client's connection there and hand its session
// over (rpc/sessions_service.h answers on the other side).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "broker/session/session_registry.h"
#include "cluster/membership/swim.h"
#include "proto/cluster.grpc.pb.h"

namespace starling::cluster {

v1::TakeSessionReply to_proto(const std::optional<broker::HandedSession>& handed);
// nullopt when the reply says the peer had nothing; a damaged delivery is
// left out.
std::optional<broker::HandedSession> from_proto(const v1::TakeSessionReply& reply);

struct TakeoverStats {
  std::atomic<uint64_t> taken{0};   // sessions (or connections) another node had
  std::atomic<uint64_t> failed{0};  // a live peer did not answer in time
};

// Asks every peer in `peers` at once; waits at most `timeout`. A peer that
// does not answer is counted and logged; what the others handed is used.
std::optional<broker::HandedSession> take_from_peers(const std::vector<Member>& peers, const std::string& self_id,
                                                     const std::string& secret, const std::string& client_id,
                                                     bool clean_start, std::chrono::milliseconds timeout,
                                                     TakeoverStats& stats, spdlog::logger& log);

}  // namespace starling::cluster
