// The versions of retained messages in the cluster: last writer wins, by a
// hybrid logical clock (physical milliseconds, a counter when they tie or
// the clock goes back) and then the origin's node id. Every node keeps the
// version of each retained topic it has seen set here or by a peer; a
// message older than the one it has is ignored. A cleared topic's version
// (its tombstone) is needed only until every older write that could still be
// travelling has come: it is forgotten after a minute.
#pragma once

#include <chrono>
#include <compare>
#include <functional>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "cluster/expiring_map.h"
#include "cluster/hybrid_clock.h"

namespace starling::cluster {

struct RetainedVersion {
  uint64_t hlc = 0;
  std::string origin;
  friend auto operator<=>(const RetainedVersion&, const RetainedVersion&) = default;
};

class RetainedVersions {
 public:
  explicit RetainedVersions(std::string self_id,
                            std::chrono::milliseconds tombstone_life = std::chrono::minutes(1))
      : self_(std::move(self_id)), tombstone_life_(tombstone_life) {}
  const std::string& self_id() const { return self_; }
  // A retained message (or its clearing) published on this node: its
  // version, recorded, with `apply` (which keeps it) run under the same lock,
  // so no write from a peer comes between.
  // `cleared`: the message clears the topic (an empty payload).
  uint64_t stamp(std::string_view topic, const std::function<void()>& apply, bool cleared = false);
  // One from a peer: when it is newer than what this node has for the topic,
  // recorded and `apply` run under the lock, and true. The clock moves past
  // it either way.
  bool accept(std::string_view topic, const RetainedVersion& version, const std::function<void()>& apply,
              bool cleared = false);
  size_t size() const;  // topics with a version
  std::optional<RetainedVersion> version_of(std::string_view topic) const;

 private:
  // Records `version` for `topic` (under mu_), and forgets tombstones due.
  void record(std::string_view topic, const RetainedVersion& version, bool cleared);

  const std::string self_;
  const std::chrono::milliseconds tombstone_life_;
  HybridClock clock_;
  mutable std::mutex mu_;
  // A cleared topic's version (its tombstone) is forgotten after tombstone_life_.
  ExpiringMap<RetainedVersion> versions_;
};

}  // namespace starling::cluster
