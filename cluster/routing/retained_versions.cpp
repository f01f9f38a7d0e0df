#include "cluster/routing/retained_versions.h"

namespace starling::cluster {

uint64_t RetainedVersions::stamp(std::string_view topic, const std::function<void()>& apply, bool cleared) {
  std::lock_guard lock(mu_);
  RetainedVersion v{clock_.tick(), self_};
  record(topic, v, cleared);
  apply();
  return v.hlc;
}

bool RetainedVersions::accept(std::string_view topic, const RetainedVersion& version,
                              const std::function<void()>& apply, bool cleared) {
  std::lock_guard lock(mu_);
  clock_.tick(version.hlc);
  auto it = versions_.find(topic);
  if (it != versions_.end() && !(it->second < version)) return false;
  record(topic, version, cleared);
  apply();
  return true;
}

void RetainedVersions::record(std::string_view topic, const RetainedVersion& version, bool cleared) {
  const auto now = std::chrono::steady_clock::now();
  while (!tombstones_.empty() && tombstones_.front().forget_at <= now) {
    const Tombstone& t = tombstones_.front();
    // Unless the topic was written again since.
    auto it = versions_.find(t.topic);
    if (it != versions_.end() && it->second == t.version) versions_.erase(it);
    tombstones_.pop_front();
  }
  versions_.insert_or_assign(std::string{topic}, version);
  if (cleared) tombstones_.push_back(Tombstone{now + tombstone_life_, std::string{topic}, version});
}

std::optional<RetainedVersion> RetainedVersions::version_of(std::string_view topic) const {
  std::lock_guard lock(mu_);
  auto it = versions_.find(topic);
  if (it == versions_.end()) return std::nullopt;
  return it->second;
}

size_t RetainedVersions::size() const {
  std::lock_guard lock(mu_);
  return versions_.size();
}

}  // namespace starling::cluster
