#include "cluster/routing/retained_versions.h"

#include <algorithm>
#include <chrono>

namespace starling::cluster {

uint64_t RetainedVersions::tick(uint64_t seen) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  const uint64_t physical = static_cast<uint64_t>(ms) << 16;
  // Never backwards, never equal to anything seen: the counter takes over
  // within a millisecond and when the wall clock is behind a peer's.
  last_ = std::max({physical, last_ + 1, seen + 1});
  return last_;
}

uint64_t RetainedVersions::stamp(std::string_view topic, const std::function<void()>& apply) {
  std::lock_guard lock(mu_);
  RetainedVersion v{tick(0), self_};
  versions_.insert_or_assign(std::string{topic}, v);
  apply();
  return v.hlc;
}

bool RetainedVersions::accept(std::string_view topic, const RetainedVersion& version,
                              const std::function<void()>& apply) {
  std::lock_guard lock(mu_);
  tick(version.hlc);
  auto it = versions_.find(topic);
  if (it != versions_.end() && !(it->second < version)) return false;
  versions_.insert_or_assign(std::string{topic}, version);
  apply();
  return true;
}

std::optional<RetainedVersion> RetainedVersions::version_of(std::string_view topic) const {
  std::lock_guard lock(mu_);
  auto it = versions_.find(topic);
  if (it == versions_.end()) return std::nullopt;
  return it->second;
}

}  // namespace starling::cluster
