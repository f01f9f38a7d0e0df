// Which nodes keep a copy of a persistent session (issue 8, DESIGN.md
// "Sessions"): besides its owner, the `replication-factor - 1` live members
// that rank highest for its client id by rendezvous (highest random weight)
// hashing. Every node computes the same answer from the same members, and a
// member joining or leaving moves only the sessions it wins or loses.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace starling::cluster {

// The weight of `node_id` for `client_id`: a fixed hash (the same on every
// node and every build), not std::hash.
uint64_t rendezvous_weight(std::string_view client_id, std::string_view node_id);

// The `count` members other than `owner` that keep copies of the session,
// best first. Fewer when there are not enough members.
std::vector<std::string> pick_replicas(std::string_view client_id, std::span<const std::string> members,
                                       std::string_view owner, size_t count);

// Of the session's `replicas`, the one that adopts it when its owner dies:
// the highest-ranked one still in `live` (nullopt: none is). Every survivor
// agrees on it, so no two adopt one session.
std::optional<std::string> pick_adopter(std::string_view client_id, std::span<const std::string> replicas,
                                        std::span<const std::string> live);

}  // namespace starling::cluster
