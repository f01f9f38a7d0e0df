#pragma once

// /metrics: the node's Prometheus registry, plus what is counted elsewhere
// (Stats, the session census) turned into metric families at scrape time, so
// the hot path only ever adds to relaxed atomics. Names follow Prometheus
// conventions: starling_ prefix, base units, _total on counters; the process
// metrics are the standard process_* ones.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/gauge.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "broker/session/session_registry.h"
#include "broker/stats.h"

namespace starling::broker {

// What a scrape reads from the node's parts.
struct NodeGauges {
  SessionRegistry::Census sessions;
  size_t subscriptions = 0;
  size_t shared_groups = 0;
  size_t retained = 0;
  std::optional<uint64_t> storage_free_bytes;  // on the data directory's file system
};

class Metrics {
 public:
  Metrics(const Stats& stats, const std::string& node_id, std::string_view version);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Metrics that change rarely live in the registry (the cluster adds its own).
  prometheus::Registry& registry() noexcept { return *registry_; }
  // Cluster members by state; a single node is one alive member.
  prometheus::Gauge& members(std::string_view state);

  // Every metric in the Prometheus text exposition format (version 0.0.4).
  std::string serialize(const NodeGauges& gauges) const;

 private:
  std::vector<prometheus::MetricFamily> collect(const NodeGauges& gauges) const;

  const Stats& stats_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& members_;
};

// process_cpu_seconds_total, process_resident_memory_bytes, ... read from
// /proc/self, as the official client libraries report them.
std::vector<prometheus::MetricFamily> process_metrics();

}  // namespace starling::broker
