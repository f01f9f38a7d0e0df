#include "cluster/replication/replica_set.h"

#include <algorithm>

namespace starling::cluster {
namespace {

// FNV-1a, then a 64-bit finaliser (splitmix64) to spread nearby inputs.
uint64_t fnv1a(uint64_t hash, std::string_view text) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Highest weight first; ties (practically never) by node id.
std::vector<std::string> ranked(std::string_view client_id, std::span<const std::string> nodes) {
  std::vector<std::pair<uint64_t, std::string>> weighted;
  weighted.reserve(nodes.size());
  for (const auto& n : nodes) weighted.emplace_back(rendezvous_weight(client_id, n), n);
  std::sort(weighted.begin(), weighted.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::vector<std::string> out;
  out.reserve(weighted.size());
  for (auto& [weight, node] : weighted) out.push_back(std::move(node));
  return out;
}

}  // namespace

uint64_t rendezvous_weight(std::string_view client_id, std::string_view node_id) {
  uint64_t hash = fnv1a(0xcbf29ce484222325ULL, client_id);
  hash = fnv1a(hash ^ 0xff, node_id);  // a separator: ("ab","c") and ("a","bc") differ
  return mix(hash);
}

std::vector<std::string> pick_replicas(std::string_view client_id, std::span<const std::string> members,
                                       std::string_view owner, size_t count) {
  std::vector<std::string> others;
  for (const auto& m : members) {
    if (m != owner && std::find(others.begin(), others.end(), m) == others.end()) others.push_back(m);
  }
  auto out = ranked(client_id, others);
  if (out.size() > count) out.resize(count);
  return out;
}

std::optional<std::string> pick_adopter(std::string_view client_id, std::span<const std::string> replicas,
                                        std::span<const std::string> live) {
  for (auto& r : ranked(client_id, replicas)) {
    if (std::find(live.begin(), live.end(), r) != live.end()) return r;
  }
  return std::nullopt;
}

}  // namespace starling::cluster
