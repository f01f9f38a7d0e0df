#include "broker/routing/retained_store.h"

#include "broker/routing/topic_match.h"

namespace starling::broker {

void RetainedStore::set(const MessagePtr& message) {
  std::lock_guard lock(mu_);
  if (message->payload.empty()) {
    by_topic_.erase(message->topic);
  } else {
    by_topic_.insert_or_assign(message->topic, message);
  }
}

std::vector<MessagePtr> RetainedStore::matching(std::string_view filter, Clock::time_point now) {
  std::vector<MessagePtr> out;
  std::lock_guard lock(mu_);
  // An exact filter needs one lookup; wildcards walk the topics. A retained
  // tree would make wildcard lookups cheaper when there are very many.
  if (filter.find_first_of("+#") == std::string_view::npos) {
    auto it = by_topic_.find(filter);
    if (it != by_topic_.end()) {
      if (it->second->expired(now)) {
        by_topic_.erase(it);
      } else {
        out.push_back(it->second);
      }
    }
    return out;
  }
  for (auto it = by_topic_.begin(); it != by_topic_.end();) {
    if (it->second->expired(now)) {
      it = by_topic_.erase(it);
      continue;
    }
    if (topic_matches(filter, it->first)) out.push_back(it->second);
    ++it;
  }
  return out;
}

size_t RetainedStore::size() const {
  std::lock_guard lock(mu_);
  return by_topic_.size();
}

}  // namespace starling::broker
