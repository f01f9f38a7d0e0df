// A log-linear latency histogram in the manner of HdrHistogram: values in
// nanoseconds, exact below 256 ns, then 128 sub-buckets per power of two (under
// 0.8% relative error) up to kMaxValue; larger values land in the last bucket.
// The exact maximum is kept on the side.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

namespace starling::bench {

class Histogram {
 public:
  static constexpr uint64_t kMaxValue = 60ull * 1'000'000'000ull;  // 60 s in ns

  Histogram() : counts_(index_of(kMaxValue) + 1, 0) {}

  void record(uint64_t ns) {
    ++counts_[index_of(std::min(ns, kMaxValue))];
    ++total_;
    max_ = std::max(max_, ns);
  }

  uint64_t count() const { return total_; }
  uint64_t max() const { return max_; }

  // The value at quantile q (0..1): the midpoint of the bucket holding the
  // ceil(q * count)-th smallest value, never above the exact maximum.
  uint64_t percentile(double q) const {
    if (total_ == 0) return 0;
    auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total_)));
    rank = std::clamp<uint64_t>(rank, 1, total_);
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(midpoint_of(i), max_);
    }
    return max_;
  }

 private:
  static constexpr unsigned kSubBits = 7;  // 128 sub-buckets per power of two
  static constexpr uint64_t kLinear = 2ull << kSubBits;  // 256: exact below this

  static size_t index_of(uint64_t v) {
    if (v < kLinear) return static_cast<size_t>(v);
    const unsigned e = static_cast<unsigned>(std::bit_width(v)) - 1;  // >= 8
    const uint64_t sub = (v >> (e - kSubBits)) & ((1ull << kSubBits) - 1);
    return static_cast<size_t>(kLinear + (e - (kSubBits + 1)) * (1ull << kSubBits) + sub);
  }

  static uint64_t midpoint_of(size_t index) {
    if (index < kLinear) return index;
    const uint64_t rel = index - kLinear;
    const unsigned e = static_cast<unsigned>(rel >> kSubBits) + kSubBits + 1;
    const uint64_t sub = rel & ((1ull << kSubBits) - 1);
    const uint64_t width = 1ull << (e - kSubBits);
    const uint64_t lower = ((1ull << kSubBits) + sub) * width;
    return lower + width / 2;
  }

  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
  uint64_t max_ = 0;
};

}  // namespace starling::bench
