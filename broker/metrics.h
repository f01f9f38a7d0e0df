#pragma once

// The node's Prometheus registry and the metrics declared on it. Metric names
// follow Prometheus conventions: starling_ prefix, base units, _total on
// counters. Components get references to their metrics from here.

#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/registry.h>

namespace starling::broker {

class Metrics {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Incremented once per accepted MQTT network connection, any listener.
  prometheus::Counter& connections_total() noexcept { return connections_total_; }

  // The whole registry in the Prometheus text exposition format.
  std::string serialize() const;

  // Shared because the HTTP exposer holds the registry too.
  const std::shared_ptr<prometheus::Registry>& registry() const noexcept { return registry_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter& connections_total_;  // owned by registry_
};

}  // namespace starling::broker
