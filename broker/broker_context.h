// What every connection and handler of one node shares: limits, the session
// registry, the router, the retained store, statistics and the logger.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include <spdlog/logger.h>

#include "broker/routing/retained_store.h"
#include "broker/routing/router.h"
#include "broker/session/session_registry.h"
#include "broker/stats.h"
#include "storage/result.h"

namespace starling::storage {
class Compactor;
class GroupCommit;
}

namespace starling::broker {

class WorkerPool;
class ClusterLink;

struct Limits {
  uint32_t max_packet_size = 1024 * 1024;
  uint16_t max_keepalive = 65535;
  uint16_t receive_maximum = 128;
  uint16_t max_inflight = 128;
  uint16_t topic_alias_maximum = 64;
  uint32_t max_connections = 0;  // 0: no limit
  uint32_t max_topic_levels = 128;
  uint32_t max_topic_length = 65535;
  std::chrono::milliseconds connect_timeout{10'000};
};

// Whether a topic name or filter is within the configured length and levels.
inline bool topic_within_limits(std::string_view topic, const Limits& limits) {
  if (topic.size() > limits.max_topic_length) return false;
  size_t levels = 1;
  for (char c : topic) levels += c == '/';
  return levels <= limits.max_topic_levels;
}

struct BrokerContext {
  Limits limits;
  SessionRegistry& sessions;
  Router& router;
  RetainedStore& retained;
  Stats& stats;
  spdlog::logger& log;
  // The network workers; connections count themselves on theirs, and may
  // move between them. Null where connections are not in a pool.
  WorkerPool* workers = nullptr;
  // The node's store, written in group commits (storage/group_commit.h). Null
  // where nothing is persisted.
  storage::GroupCommit* commits = nullptr;
  // Compacts what drained queues erased (storage/compactor.h). Null where
  // nothing is persisted.
  storage::Compactor* compactor = nullptr;
  // The rest of the cluster (SingleNode when alone). Null in unit tests.
  ClusterLink* cluster = nullptr;
  // MessageId::origin of the messages published here.
  uint64_t message_origin = new_message_origin();

  // The outcome of a write someone waited for: a failure is logged when the
  // store starts failing, and the recovery when it works again, not once
  // per write.
  void note_store_write(const storage::Status& status) {
    if (!status) {
      stats.store_write_failures.fetch_add(1, std::memory_order_relaxed);
      if (!stats.store_failing.exchange(true)) log.warn("store write failed: {}", status.message());
    } else if (stats.store_failing.exchange(false)) {
      log.info("store writes succeed again");
    }
  }
};

}  // namespace starling::broker
