#include "cluster/sessions/connect_fence.h"

namespace starling::cluster {

ConnectEpoch ConnectFence::begin(const std::string& client_id) {
  ConnectEpoch epoch{clock_.tick(), self_};
  std::lock_guard lock(mu_);
  // A second CONNECT of the client here: the newer one is the one that counts
  // (the registry closes the other).
  pending_.insert_or_assign(client_id, Pending{epoch, false});
  return epoch;
}

bool ConnectFence::end(const std::string& client_id, const ConnectEpoch& epoch) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(client_id);
  if (it == pending_.end() || it->second.epoch != epoch) return true;  // a newer one here took over the entry
  const bool stands = !it->second.lost;
  pending_.erase(it);
  if (stands) {
    const auto now = std::chrono::steady_clock::now();
    stood_.forget_due(now);
    stood_.put(client_id, epoch, now + remember_);
  }
  return stands;
}

const ConnectEpoch* ConnectFence::stood(const std::string& client_id, std::chrono::steady_clock::time_point now) {
  stood_.forget_due(now);
  return stood_.find(client_id);
}

bool ConnectFence::yield_to(const std::string& client_id, const ConnectEpoch& theirs) {
  clock_.tick(theirs.hlc);
  std::lock_guard lock(mu_);
  auto it = pending_.find(client_id);
  if (it == pending_.end()) {
    const ConnectEpoch* here = stood(client_id, std::chrono::steady_clock::now());
    if (here && *here > theirs) return false;  // an older CONNECT's late request
    if (here) stood_.erase(client_id);
    return true;
  }
  if (it->second.epoch > theirs) return false;
  it->second.lost = true;
  return true;
}

}  // namespace starling::cluster
