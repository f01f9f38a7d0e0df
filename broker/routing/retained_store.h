// Retained messages, one per topic, apart from the subscription tree (as
// Mosquitto keeps them). Thread-safe: mu_ guards the map.
#pragma once

#include <map>
#include <mutex>
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
  // dropped on the way [MQTT-3.3.2-5].
  std::vector<MessagePtr> matching(std::string_view filter, Clock::time_point now);
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, MessagePtr, std::less<>> by_topic_;
};

}  // namespace starling::broker
