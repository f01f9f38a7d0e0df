// A hybrid logical clock: wall-clock milliseconds shifted left 16 bits, with
// the low bits counting when readings tie or the wall clock is behind a time
// seen from a peer. Never goes back, never repeats.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>

namespace starling::cluster {

class HybridClock {
 public:
  // A reading after every earlier one and after `seen` (a peer's reading).
  uint64_t tick(uint64_t seen = 0) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    std::lock_guard lock(mu_);
    last_ = std::max({static_cast<uint64_t>(ms) << 16, last_ + 1, seen + 1});
    return last_;
  }

 private:
  std::mutex mu_;
  uint64_t last_ = 0;
};

}  // namespace starling::cluster
