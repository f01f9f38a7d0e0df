#include "broker/routing/retained_store.h"

#include "broker/routing/topic_match.h"

namespace starling::broker {

void RetainedStore::set(const MessagePtr& message) {
  std::unique_lock lock(mu_);
  if (message->payload.empty()) {
    by_topic_.erase(message->topic);
  } else {
    by_topic_.insert_or_assign(message->topic, message);
  }
}

std::vector<MessagePtr> RetainedStore::matching(std::string_view filter, Clock::time_point now) const {
  std::vector<MessagePtr> out;
  std::shared_lock lock(mu_);
  // An exact filter needs one lookup; wildcards walk the topics. A retained
  // tree would make wildcard lookups cheaper when there are very many.
  if (filter.find_first_of("+#") == std::string_view::npos) {
    auto it = by_topic_.find(filter);
    if (it != by_topic_.end() && !it->second->expired(now)) out.push_back(it->second);
    return out;
  }
  for (const auto& [topic, message] : by_topic_) {
    if (!message->expired(now) && topic_matches(filter, topic)) out.push_back(message);
  }
  return out;
}

RetainedStore::Page RetainedStore::page(std::string_view filter, std::string_view after, size_t limit,
                                        Clock::time_point now) const {
  Page out;
  std::shared_lock lock(mu_);
  for (auto it = after.empty() ? by_topic_.begin() : by_topic_.upper_bound(after); it != by_topic_.end(); ++it) {
    if (it->second->expired(now) || !topic_matches(filter, it->first)) continue;
    if (out.messages.size() == limit) {
      out.more = true;
      break;
    }
    out.messages.push_back(it->second);
  }
  return out;
}

void RetainedStore::remove_expired(Clock::time_point now) {
  std::unique_lock lock(mu_);
  std::erase_if(by_topic_, [now](const auto& entry) { return entry.second->expired(now); });
}

size_t RetainedStore::size() const {
  std::shared_lock lock(mu_);
  return by_topic_.size();
}

}  // namespace starling::broker
