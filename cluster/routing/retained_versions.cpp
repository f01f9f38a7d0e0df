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
  const RetainedVersion* have = versions_.find(topic);
  if (have && !(*have < version)) return false;
  record(topic, version, cleared);
  apply();
  return true;
}

void RetainedVersions::record(std::string_view topic, const RetainedVersion& version, bool cleared) {
  const auto now = std::chrono::steady_clock::now();
  versions_.forget_due(now);
  versions_.put(topic, version, cleared ? std::optional{now + tombstone_life_} : std::nullopt);
}

std::optional<RetainedVersion> RetainedVersions::version_of(std::string_view topic) const {
  std::lock_guard lock(mu_);
  const RetainedVersion* version = versions_.find(topic);
  if (!version) return std::nullopt;
  return *version;
}

size_t RetainedVersions::size() const {
  std::lock_guard lock(mu_);
  return versions_.size();
}

}  // namespace starling::cluster
