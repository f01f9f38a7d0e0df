// One live connection per client id in the cluster, even when two CONNECTs
// for it arrive on two nodes at once: each CONNECT gets an epoch (a hybrid
// logical clock reading, then the node id), is registered here before the
// other nodes are asked, and the newer epoch wins on both sides. A node
// asked while a newer CONNECT of the client is under way answers
// "superseded" and the asker refuses its own; an older one under way here is
// marked lost and refused when it finishes.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "cluster/hybrid_clock.h"

namespace starling::cluster {

struct ConnectEpoch {
  uint64_t hlc = 0;
  std::string node;
  friend auto operator<=>(const ConnectEpoch&, const ConnectEpoch&) = default;
};

class ConnectFence {
 public:
  explicit ConnectFence(std::string self_id) : self_(std::move(self_id)) {}
  // A CONNECT here starts: its epoch.
  ConnectEpoch begin(const std::string& client_id);
  // ... and ends: true when no newer CONNECT elsewhere got in meanwhile.
  bool end(const std::string& client_id, const ConnectEpoch& epoch);
  // Another node's CONNECT: false when one under way here is newer (theirs
  // loses); otherwise one here, if any, loses.
  bool yield_to(const std::string& client_id, const ConnectEpoch& theirs);

 private:
  struct Pending {
    ConnectEpoch epoch;
    bool lost = false;
  };
  const std::string self_;
  HybridClock clock_;
  std::mutex mu_;
  std::map<std::string, Pending, std::less<>> pending_;  // only while a CONNECT asks the others
};

}  // namespace starling::cluster
