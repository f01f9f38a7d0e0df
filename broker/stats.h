// The node's counters, kept where the work happens and read by $SYS and
// /metrics. Relaxed atomics: they are statistics, not synchronisation, and
// the hot path pays one uncontended-in-the-common-case add per event.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "broker/mqtt/reason_code.h"
#include "broker/mqtt/types.h"

namespace starling::broker {

// Why a message did not reach a subscriber (or anyone).
enum class DropReason : uint8_t {
  kQueueFull,      // a subscriber's queue was full: the publisher was refused
  kExpired,        // its message expiry passed before it could be sent
  kTooLarge,       // larger than the subscriber's Maximum Packet Size
  kNoSubscribers,  // a client's PUBLISH that matched no subscription
  kSlowConsumer,   // QoS 0 to an online subscriber whose queue was full
  kOffline,        // QoS 0 to a session with no connection
};
inline constexpr size_t kDropReasons = 6;
std::string_view to_string(DropReason reason) noexcept;

// The kinds of MQTT listener a connection came through.
enum class ListenerKind : uint8_t { kMqtt, kWebSocket };
inline constexpr size_t kListenerKinds = 2;
std::string_view to_string(ListenerKind kind) noexcept;

// A latency histogram with fixed buckets, lock-free: observe() is two relaxed
// adds, so it can sit on the delivery path. Exposed in Prometheus form.
class LatencyHistogram {
 public:
  // Upper bounds in seconds: 100 µs to 10 s.
  static constexpr std::array<double, 16> kBounds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                     0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                     1,      2.5,     5,      10};
  void observe(std::chrono::nanoseconds elapsed) noexcept;

  struct Snapshot {
    std::array<uint64_t, kBounds.size() + 1> counts{};  // per bucket, not cumulative; last: +Inf
    double sum_seconds = 0;
    uint64_t count() const noexcept;
  };
  Snapshot snapshot() const noexcept;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
};

// What the read and delivery path counts: every packet, so each worker thread
// has its own set, on cache lines of its own (two workers adding to one
// shared counter cost the delivery path a fifth more CPU, measured). A
// scrape adds the sets up.
struct alignas(64) TrafficCounters {
  using Counter = std::atomic<uint64_t>;
  // Client PUBLISHes received, and deliveries sent, by QoS; payload bytes too.
  std::array<Counter, 3> messages_received{};
  std::array<Counter, 3> messages_sent{};
  std::array<Counter, 3> payload_bytes_received{};
  std::array<Counter, 3> payload_bytes_sent{};
  // Every byte read from or written to client sockets.
  Counter bytes_received{0};
  Counter bytes_sent{0};
  // From a PUBLISH's arrival to its bytes being handed to a subscriber's
  // connection.
  LatencyHistogram delivery_latency;
};

// TrafficCounters summed over the workers.
struct TrafficTotals {
  std::array<uint64_t, 3> messages_received{}, messages_sent{}, payload_bytes_received{}, payload_bytes_sent{};
  uint64_t bytes_received = 0, bytes_sent = 0;
  LatencyHistogram::Snapshot delivery_latency;
};

class Stats {
 public:
  using Counter = std::atomic<uint64_t>;
  static size_t qos_index(mqtt::QoS qos) noexcept { return static_cast<size_t>(qos) & 3u; }

  // One set of traffic counters per worker (`shards`: the number of workers).
  explicit Stats(size_t shards = 1);
  // Worker `index`'s counters; any other thread (index -1) shares the last set.
  TrafficCounters& traffic(int index) noexcept {
    return traffic_[index >= 0 && static_cast<size_t>(index) < shards_ ? static_cast<size_t>(index) : shards_ - 1];
  }
  TrafficTotals traffic_totals() const noexcept;

  std::array<Counter, kDropReasons> dropped{};
  // Network connections by listener: open now, and accepted since start.
  std::array<Counter, kListenerKinds> connections_open{};
  std::array<Counter, kListenerKinds> connections_accepted{};
  Counter connections{0};        // currently open, any listener
  // Connection objects that exist: open ones, and closed ones whose last
  // bytes (a DISCONNECT) may still be on their way out.
  Counter connections_alive{0};
  Counter clients_connected{0};  // open and past CONNECT
  Counter connections_moved{0};  // to another worker (Connection::follow_waker)
  // CONNACK results and disconnect causes, by reason code (one byte). A
  // network connection that went away without DISCONNECT counts apart.
  std::array<Counter, 256> connect_results{};
  std::array<Counter, 256> disconnects{};
  Counter disconnects_lost{0};
  Counter store_write_failures{0};
  std::atomic<bool> store_failing{false};  // the last write to the node's store failed
  // How long each commit to the store (write and sync) took.
  LatencyHistogram commit_latency;

  void count_connect(mqtt::ReasonCode result) noexcept {
    connect_results[static_cast<uint8_t>(result)].fetch_add(1, std::memory_order_relaxed);
  }
  // `reason`: what the server sent; kSuccess for a client's DISCONNECT;
  // nullopt when the network connection ended without one.
  void count_disconnect(std::optional<mqtt::ReasonCode> reason) noexcept {
    (reason ? disconnects[static_cast<uint8_t>(*reason)] : disconnects_lost).fetch_add(1, std::memory_order_relaxed);
  }
  void count_drop(DropReason reason, uint64_t n = 1) noexcept {
    if (n != 0) dropped[static_cast<size_t>(reason)].fetch_add(n, std::memory_order_relaxed);
  }
  static uint64_t sum(const auto& counters) noexcept {
    uint64_t total = 0;
    for (const auto& c : counters) total += c;
    return total;
  }

 private:
  size_t shards_;  // workers + 1: the last for other threads
  std::unique_ptr<TrafficCounters[]> traffic_;
};

}  // namespace starling::broker
