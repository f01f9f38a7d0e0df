// One live connection per client id in the cluster, even when two CONNECTs
// for it arrive on two nodes at once: each CONNECT gets an epoch (a hybrid
// logical clock reading, then the node id), is registered here before the
// other nodes are asked, and the newer epoch wins on both sides. A node
// asked while a newer CONNECT of the client is under way answers
// "superseded" and the asker refuses its own; an older one under way here is
// marked lost and refused when it finishes. A CONNECT that stood is
// remembered for a few seconds more (longer than the others take to ask), so
// an older one's request that comes after the session opened here is refused
// too, rather than taking the session from the newer connection.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "cluster/expiring_map.h"
#include "cluster/hybrid_clock.h"

namespace starling::cluster {

struct ConnectEpoch {
  uint64_t hlc = 0;
  std::string node;
  friend auto operator<=>(const ConnectEpoch&, const ConnectEpoch&) = default;
};

class ConnectFence {
 public:
  explicit ConnectFence(std::string self_id, std::chrono::milliseconds remember = std::chrono::seconds(10))
      : self_(std::move(self_id)), remember_(remember) {}
  // A CONNECT here starts: its epoch.
  ConnectEpoch begin(const std::string& client_id);
  // ... and ends: true when no newer CONNECT elsewhere got in meanwhile.
  bool end(const std::string& client_id, const ConnectEpoch& epoch);
  // Another node's CONNECT: false when one under way here is newer (theirs
  // loses); otherwise one here, if any, loses.
  bool yield_to(const std::string& client_id, const ConnectEpoch& theirs);
  // A reading newer than every epoch this node gave out or saw: the epoch
  // of a session adopted from a copy, which makes the dead owner's copy
  // the older one.
  uint64_t stamp() { return clock_.tick(); }

 private:
  struct Pending {
    ConnectEpoch epoch;
    bool lost = false;
  };
  // The newest CONNECT here that stood, unless it is due to be forgotten.
  const ConnectEpoch* stood(const std::string& client_id, std::chrono::steady_clock::time_point now);

  const std::string self_;
  const std::chrono::milliseconds remember_;
  HybridClock clock_;
  std::mutex mu_;
  std::map<std::string, Pending, std::less<>> pending_;  // only while a CONNECT asks the others
  ExpiringMap<ConnectEpoch> stood_;
};

}  // namespace starling::cluster
