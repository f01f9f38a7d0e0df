// A warning a misbehaving peer can cause again and again (every call, every
// second) is logged at most once per interval; counters say how often.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace starling::cluster {

class LogLimit {
 public:
  explicit LogLimit(std::chrono::milliseconds every) : every_ms_(every.count()) {}
  // Whether to log now: the first time, then once `every` has passed. Any thread.
  bool allow() {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count() +
                        1;  // never 0, which means "not yet"
    int64_t last = last_ms_.load(std::memory_order_relaxed);
    if (last != 0 && now - last < every_ms_) return false;
    return last_ms_.compare_exchange_strong(last, now, std::memory_order_relaxed);
  }

 private:
  const int64_t every_ms_;
  std::atomic<int64_t> last_ms_{0};
};

}  // namespace starling::cluster
