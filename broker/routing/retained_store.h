// Retained messages, one per topic, apart from the subscription tree (as
// Mosquitto keeps them). Thread-safe: mu_ guards the map; lookups share it, so
// a subscriber walking many retained topics delays only writers.
#pragma once

#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "broker/message.h"

namespace starling::broker {

class RetainedStore {
 public:
  // Stores `message` for its topic, or clears the topic when the payload is
  // empty [MQTT-3.3.1-6], [MQTT-3.3.1-7].
  void set(const MessagePtr& message);
  // The live retained messages whose topic `filter` matches; expired ones are
  // left out [MQTT-3.3.2-5] and removed by the next set() of their topic or by
  // remove_expired().
  std::vector<MessagePtr> matching(std::string_view filter, Clock::time_point now) const;
  // The same in topic order, a page at a time: at most `limit` after topic
  // `after` (from the start when empty); `more` says whether others follow.
  struct Page {
    std::vector<MessagePtr> messages;
    bool more = false;
  };
  Page page(std::string_view filter, std::string_view after, size_t limit, Clock::time_point now) const;
  size_t size() const;
  void remove_expired(Clock::time_point now);

 private:
  mutable std::shared_mutex mu_;
  std::map<std::string, MessagePtr, std::less<>> by_topic_;
};

}  // namespace starling::broker
