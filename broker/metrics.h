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

#include "broker/cluster_link.h"
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
  std::vector<ClusterMember> members;        // this node included
  std::vector<prometheus::MetricFamily> cluster;  // the cluster's own families
};

// A family with no samples yet, and one sample added to it (a counter's or a
// gauge's value, by the family's type): for families built at scrape time.
prometheus::MetricFamily metric_family(std::string name, std::string help, prometheus::MetricType type);
void add_sample(prometheus::MetricFamily& family, double value,
                std::vector<prometheus::ClientMetric::Label> labels = {});
prometheus::MetricFamily histogram_family(std::string name, std::string help, const LatencyHistogram::Snapshot& s);

class Metrics {
 public:
  Metrics(const Stats& stats, const std::string& node_id, std::string_view version);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Metrics that change rarely live in the registry.
  prometheus::Registry& registry() noexcept { return *registry_; }

  // Every metric in the Prometheus text exposition format (version 0.0.4).
  std::string serialize(const NodeGauges& gauges) const;

 private:
  std::vector<prometheus::MetricFamily> collect(const NodeGauges& gauges) const;

  const Stats& stats_;
  std::shared_ptr<prometheus::Registry> registry_;
};

// process_cpu_seconds_total, process_resident_memory_bytes, ... read from
// /proc/self, as the official client libraries report them.
std::vector<prometheus::MetricFamily> process_metrics();

}  // namespace starling::broker
