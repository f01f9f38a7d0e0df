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
    stood(client_id, now);  // forgets what is due
    stood_.insert_or_assign(client_id, Stood{epoch, now + remember_});
    forget_.emplace_back(now + remember_, client_id);
  }
  return stands;
}

const ConnectFence::Stood* ConnectFence::stood(const std::string& client_id,
                                               std::chrono::steady_clock::time_point now) {
  while (!forget_.empty() && forget_.front().first <= now) {
    auto it = stood_.find(forget_.front().second);
    if (it != stood_.end() && it->second.forget_at <= now) stood_.erase(it);
    forget_.pop_front();
  }
  auto it = stood_.find(client_id);
  return it == stood_.end() ? nullptr : &it->second;
}

bool ConnectFence::yield_to(const std::string& client_id, const ConnectEpoch& theirs) {
  clock_.tick(theirs.hlc);
  std::lock_guard lock(mu_);
  auto it = pending_.find(client_id);
  if (it == pending_.end()) {
    const Stood* here = stood(client_id, std::chrono::steady_clock::now());
    if (here && here->epoch > theirs) return false;  // an older CONNECT's late request
    if (here) stood_.erase(client_id);
    return true;
  }
  if (it->second.epoch > theirs) return false;
  it->second.lost = true;
  return true;
}

}  // namespace starling::cluster
