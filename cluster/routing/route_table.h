// The cluster's route table: the topic filters this node's sessions
// subscribe to (counted: the route exists while one session has it), and
// those of every other node, as they replicated them here.
//
// This node's routes carry a version that grows with each change, within an
// epoch that is new each time the node starts. Peers are brought up to date
// with deltas (what changed since the version a peer has) or, when the delta
// log no longer reaches back that far or the epoch differs, a snapshot.
//
// Thread-safe: the router adds and removes local routes under its lock,
// publishers match on any worker, peer links read deltas.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "broker/routing/topic_tree.h"

namespace starling::cluster {

struct RouteDelta {
  uint64_t epoch = 0;
  uint64_t from_version = 0;
  uint64_t to_version = 0;
  bool snapshot = false;
  std::vector<std::string> added;  // every route, in a snapshot
  std::vector<std::string> removed;
};

// Where a peer's routes stand here.
struct RouteVersion {
  uint64_t epoch = 0;
  uint64_t version = 0;
  friend bool operator==(const RouteVersion&, const RouteVersion&) = default;
};

class RouteTable {
 public:
  explicit RouteTable(uint64_t epoch, size_t max_log = 100000) : epoch_(epoch), max_log_(max_log) {}

  // --- this node's routes ---
  void add_local(std::string_view filter);
  void remove_local(std::string_view filter);
  RouteVersion local_version() const;
  // What a peer that has `known` (nullopt: nothing) needs to be current: a
  // delta when the log reaches back to it, else a snapshot.
  RouteDelta delta_since(std::optional<RouteVersion> known) const;
  // Every peer has `version`: older log entries can go.
  void trim(uint64_t version);
  size_t local_count() const;
  // Whether a session here has `filter` (e.g. a member of "$share/g/f").
  bool has_local(std::string_view filter) const;

  // --- other nodes' routes ---
  enum class Applied { kApplied, kNeedSnapshot };
  Applied apply(const std::string& origin, const RouteDelta& delta);
  // A node declared dead or gone: its routes go with it.
  void drop(const std::string& origin);
  std::optional<RouteVersion> version_of(const std::string& origin) const;
  using Nodes = boost::container::small_vector<std::string, 4>;
  struct Group {
    std::string filter;  // "$share/NAME/FILTER"
    Nodes nodes;         // the nodes with members in it
  };
  struct Match {
    Nodes nodes;                // with a plain route matching, each once
    std::vector<Group> groups;  // shared groups matching
  };
  Match matching(std::string_view topic) const;
  size_t remote_count() const;

 private:
  struct LogEntry {
    uint64_t version;
    std::string filter;
    bool added;
  };
  struct Origin {
    RouteVersion version;
    uint64_t index = 0;  // its SubscriberId in the tree
    std::unordered_set<std::string> filters;
  };
  void change_local(std::string_view filter, bool added);  // mu_ held
  void add_remote(Origin& o, const std::string& filter);      // remote_mu_ held
  void remove_remote(Origin& o, const std::string& filter);   // remote_mu_ held
  void untree(const std::string& filter, uint64_t index);    // remote_mu_ held

  const uint64_t epoch_;
  const size_t max_log_;

  mutable std::mutex mu_;  // this node's side
  std::unordered_map<std::string, size_t> local_;  // filter -> sessions with it
  uint64_t version_ = 0;
  std::deque<LogEntry> log_;  // covers (log_base_, version_]
  uint64_t log_base_ = 0;

  mutable std::shared_mutex remote_mu_;  // the other nodes' side
  std::map<std::string, Origin, std::less<>> origins_;
  std::unordered_map<uint64_t, std::string> origin_names_;  // tree index -> node id
  uint64_t next_index_ = 1;
  broker::TopicTree tree_;
  size_t remote_routes_ = 0;
};

}  // namespace starling::cluster
