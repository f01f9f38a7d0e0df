#include "cluster/routing/retained_versions.h"

namespace starling::cluster {

uint64_t RetainedVersions::stamp(std::string_view topic, const std::function<void()>& apply) {
  std::lock_guard lock(mu_);
  RetainedVersion v{clock_.tick(), self_};
  versions_.insert_or_assign(std::string{topic}, v);
  apply();
  return v.hlc;
}

bool RetainedVersions::accept(std::string_view topic, const RetainedVersion& version,
                              const std::function<void()>& apply) {
  std::lock_guard lock(mu_);
  clock_.tick(version.hlc);
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
