#include "cluster/routing/route_table.h"

#include <algorithm>

#include "broker/mqtt/topic.h"
#include "broker/mqtt/utf8.h"

namespace starling::cluster {

void RouteTable::add_local(std::string_view filter) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = local_.try_emplace(std::string{filter}, 0);
  if (it->second++ == 0) change_local(filter, true);
}

void RouteTable::remove_local(std::string_view filter) {
  std::lock_guard lock(mu_);
  auto it = local_.find(std::string{filter});
  if (it == local_.end()) return;
  if (--it->second == 0) {
    local_.erase(it);
    change_local(filter, false);
  }
}

void RouteTable::change_local(std::string_view filter, bool added) {
  log_.push_back(LogEntry{++version_, std::string{filter}, added});
  // A log that nobody trims (a peer that never answers) stays bounded: such a
  // peer gets a snapshot instead.
  while (log_.size() > max_log_) {
    log_base_ = log_.front().version;
    log_.pop_front();
  }
}

RouteVersion RouteTable::local_version() const {
  std::lock_guard lock(mu_);
  return {epoch_, version_};
}

RouteDelta RouteTable::delta_since(std::optional<RouteVersion> known) const {
  std::lock_guard lock(mu_);
  RouteDelta d;
  d.epoch = epoch_;
  d.to_version = version_;
  if (!known || known->epoch != epoch_ || known->version < log_base_ || known->version > version_) {
    d.snapshot = true;
    d.added.reserve(local_.size());
    for (const auto& [filter, count] : local_) d.added.push_back(filter);
    return d;
  }
  d.from_version = known->version;
  // The last change of each filter since then is its state now.
  std::unordered_map<std::string_view, bool> last;
  for (const auto& e : log_) {
    if (e.version > known->version) last[e.filter] = e.added;
  }
  for (const auto& [filter, added] : last) (added ? d.added : d.removed).emplace_back(filter);
  return d;
}

void RouteTable::trim(uint64_t version) {
  std::lock_guard lock(mu_);
  while (!log_.empty() && log_.front().version <= version) {
    log_base_ = log_.front().version;
    log_.pop_front();
  }
}

bool RouteTable::has_local(std::string_view filter) const {
  std::lock_guard lock(mu_);
  return local_.contains(std::string{filter});
}

size_t RouteTable::local_count() const {
  std::lock_guard lock(mu_);
  return local_.size();
}

RouteTable::Applied RouteTable::apply(const std::string& origin, const RouteDelta& d) {
  std::unique_lock lock(remote_mu_);
  auto it = origins_.find(origin);
  if (!d.snapshot) {
    // A delta needs what it starts from; a repeated one (its answer was lost)
    // changes nothing that is newer, since it says each filter's last state.
    if (it == origins_.end() || it->second.version.epoch != d.epoch || it->second.version.version < d.from_version) {
      return Applied::kNeedSnapshot;
    }
    if (it->second.version.version >= d.to_version) return Applied::kApplied;
  }
  if (it == origins_.end()) {
    it = origins_.emplace(origin, Origin{}).first;
    it->second.index = next_index_++;
    origin_names_.emplace(it->second.index, origin);
  }
  Origin& o = it->second;
  if (d.snapshot) {
    const std::unordered_set<std::string> wanted(d.added.begin(), d.added.end());
    std::vector<std::string> gone;
    for (const auto& f : o.filters) {
      if (!wanted.contains(f)) gone.push_back(f);
    }
    for (const auto& f : gone) remove_remote(o, f);
  } else {
    for (const auto& f : d.removed) remove_remote(o, f);
  }
  for (const auto& f : d.added) add_remote(o, f);
  o.version = RouteVersion{d.epoch, d.to_version};
  return Applied::kApplied;
}

void RouteTable::add_remote(Origin& o, const std::string& filter) {
  // A peer's filter is checked as a client's would be: garbage must not reach
  // the tree.
  if (!mqtt::validate_topic_filter(filter) || !mqtt::is_valid_mqtt_utf8(filter)) return;
  auto [it, inserted] = o.filters.insert(filter);
  if (!inserted) return;
  const broker::SubscriberId id{o.index};
  if (auto shared = mqtt::parse_shared_filter(*it)) {
    tree_.subscribe(*shared, id, broker::SubscriptionEntry{});
  } else {
    tree_.subscribe(*it, id, broker::SubscriptionEntry{});
  }
  ++remote_routes_;
}

void RouteTable::untree(const std::string& filter, uint64_t index) {
  const broker::SubscriberId id{index};
  if (auto shared = mqtt::parse_shared_filter(filter)) {
    tree_.unsubscribe(*shared, id);
  } else {
    tree_.unsubscribe(filter, id);
  }
}

void RouteTable::remove_remote(Origin& o, const std::string& filter) {
  auto it = o.filters.find(filter);
  if (it == o.filters.end()) return;
  untree(*it, o.index);
  o.filters.erase(it);
  --remote_routes_;
}

void RouteTable::drop(const std::string& origin) {
  std::unique_lock lock(remote_mu_);
  auto it = origins_.find(origin);
  if (it == origins_.end()) return;
  for (const auto& f : it->second.filters) untree(f, it->second.index);
  remote_routes_ -= it->second.filters.size();
  origin_names_.erase(it->second.index);
  origins_.erase(it);
}

std::optional<RouteVersion> RouteTable::version_of(const std::string& origin) const {
  std::shared_lock lock(remote_mu_);
  auto it = origins_.find(origin);
  if (it == origins_.end()) return std::nullopt;
  return it->second.version;
}

RouteTable::Match RouteTable::matching(std::string_view topic) const {
  // One walk of the tree for both: this runs for every PUBLISH.
  struct Collect {
    const RouteTable& table;
    Match& out;
    void on_subscriber(broker::SubscriberId id, const broker::SubscriptionEntry&) {
      const std::string& node = table.origin_names_.at(static_cast<uint64_t>(id));
      if (std::find(out.nodes.begin(), out.nodes.end(), node) == out.nodes.end()) out.nodes.push_back(node);
    }
    void on_shared_group(const broker::SharedGroup& g) {
      Group group{"$share/" + g.name + "/" + g.filter, {}};
      for (const auto& m : g.members) group.nodes.push_back(table.origin_names_.at(static_cast<uint64_t>(m.id)));
      out.groups.push_back(std::move(group));
    }
  };
  Match match;
  std::shared_lock lock(remote_mu_);
  if (remote_routes_ == 0) return match;
  Collect collect{*this, match};
  tree_.match(topic, collect);
  return match;
}

size_t RouteTable::remote_count() const {
  std::shared_lock lock(remote_mu_);
  return remote_routes_;
}

}  // namespace starling::cluster
