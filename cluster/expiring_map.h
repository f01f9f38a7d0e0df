// Entries forgotten a set time after they were put, unless put again (or
// erased) since: a map, and the times to forget in the order they were put,
// oldest first, so that forgetting costs nothing while nothing is due.
// Not thread-safe: its owner locks.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

namespace starling::cluster {

template <class Value>
class ExpiringMap {
 public:
  using Clock = std::chrono::steady_clock;

  // `value` under `key`, forgotten at `forget_at` (nullopt: kept until put
  // again or erased). Each forget_at is no earlier than the one before.
  void put(std::string_view key, Value value, std::optional<Clock::time_point> forget_at) {
    const uint64_t generation = ++generations_;
    entries_.insert_or_assign(std::string{key}, Entry{std::move(value), generation});
    if (forget_at) due_.emplace_back(*forget_at, std::string{key}, generation);
  }
  const Value* find(std::string_view key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second.value;
  }
  void erase(std::string_view key) {
    if (auto it = entries_.find(key); it != entries_.end()) entries_.erase(it);
  }
  // Forgets the entries due at `now`.
  void forget_due(Clock::time_point now) {
    while (!due_.empty() && std::get<0>(due_.front()) <= now) {
      const auto& [at, key, generation] = due_.front();
      auto it = entries_.find(key);
      if (it != entries_.end() && it->second.generation == generation) entries_.erase(it);
      due_.pop_front();
    }
  }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Value value;
    uint64_t generation;  // which put() made it
  };
  std::map<std::string, Entry, std::less<>> entries_;
  std::deque<std::tuple<Clock::time_point, std::string, uint64_t>> due_;
  uint64_t generations_ = 0;
};

}  // namespace starling::cluster
