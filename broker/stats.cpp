#include "broker/stats.h"

#include <algorithm>

namespace starling::broker {

std::string_view to_string(DropReason reason) noexcept {
  switch (reason) {
    case DropReason::kQueueFull: return "queue_full";
    case DropReason::kExpired: return "expired";
    case DropReason::kTooLarge: return "too_large";
    case DropReason::kNoSubscribers: return "no_subscribers";
    case DropReason::kSlowConsumer: return "slow_consumer";
    case DropReason::kOffline: return "offline";
  }
  return "unknown";
}

std::string_view to_string(ListenerKind kind) noexcept {
  return kind == ListenerKind::kWebSocket ? "ws" : "mqtt";
}

namespace {

// The bounds in whole nanoseconds, so observe() compares integers.
constexpr auto kBoundsNs = [] {
  std::array<uint64_t, LatencyHistogram::kBounds.size()> ns{};
  for (size_t i = 0; i < ns.size(); ++i) ns[i] = static_cast<uint64_t>(LatencyHistogram::kBounds[i] * 1e9 + 0.5);
  return ns;
}();

}  // namespace

void LatencyHistogram::observe(std::chrono::nanoseconds elapsed) noexcept {
  const auto ns = static_cast<uint64_t>(std::max<int64_t>(0, elapsed.count()));
  // le: a value on a bound counts in that bound's bucket.
  const auto bucket = std::lower_bound(kBoundsNs.begin(), kBoundsNs.end(), ns) - kBoundsNs.begin();
  counts_[static_cast<size_t>(bucket)].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
}

LatencyHistogram::Snapshot LatencyHistogram::snapshot() const noexcept {
  Snapshot s;
  for (size_t i = 0; i < counts_.size(); ++i) s.counts[i] = counts_[i].load(std::memory_order_relaxed);
  s.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) * 1e-9;
  return s;
}

Stats::Stats(size_t shards)
    : shards_(shards + 1), traffic_(std::make_unique<TrafficCounters[]>(shards_)) {}

TrafficTotals Stats::traffic_totals() const noexcept {
  TrafficTotals t;
  const auto add = [](std::array<uint64_t, 3>& to, const std::array<Counter, 3>& from) {
    for (size_t q = 0; q < 3; ++q) to[q] += from[q].load(std::memory_order_relaxed);
  };
  for (size_t i = 0; i < shards_; ++i) {
    const TrafficCounters& c = traffic_[i];
    add(t.messages_received, c.messages_received);
    add(t.messages_sent, c.messages_sent);
    add(t.payload_bytes_received, c.payload_bytes_received);
    add(t.payload_bytes_sent, c.payload_bytes_sent);
    t.bytes_received += c.bytes_received.load(std::memory_order_relaxed);
    t.bytes_sent += c.bytes_sent.load(std::memory_order_relaxed);
    const auto h = c.delivery_latency.snapshot();
    for (size_t b = 0; b < h.counts.size(); ++b) t.delivery_latency.counts[b] += h.counts[b];
    t.delivery_latency.sum_seconds += h.sum_seconds;
  }
  return t;
}

uint64_t LatencyHistogram::Snapshot::count() const noexcept {
  uint64_t total = 0;
  for (uint64_t c : counts) total += c;
  return total;
}

}  // namespace starling::broker
