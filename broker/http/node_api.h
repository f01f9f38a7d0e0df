// What the HTTP listener serves: /metrics, /healthz, /readyz and the admin
// API under /api/v1/ (admin_api.cpp). The server fills in a NodeView; the
// endpoints only read it and ask the node's parts, which are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "broker/cluster_link.h"
#include "broker/config.h"
#include "broker/http/http_server.h"
#include "broker/http/request_target.h"
#include "broker/metrics.h"
#include "broker/routing/retained_store.h"
#include "broker/routing/router.h"
#include "broker/session/session_registry.h"
#include "broker/stats.h"

namespace starling::broker {

struct BoundListener {
  std::string name;  // "mqtt", "ws", "http"
  std::string address;
  uint16_t port = 0;
};

struct NodeView {
  const Config& config;
  Metrics& metrics;
  const Stats& stats;
  SessionRegistry& sessions;
  Router& router;
  RetainedStore& retained;
  const ClusterLink& cluster;
  Clock::time_point started;
  std::chrono::system_clock::time_point started_wall;
  std::vector<BoundListener> listeners;
  // MQTT listeners bound and accepting; false once draining begins.
  const std::atomic<bool>& accepting;
  const std::atomic<bool>& draining;
  // Runs a no-op on every event loop of the node and returns the names of
  // those that did not run it within the time given.
  std::function<std::vector<std::string>(std::chrono::milliseconds)> unresponsive_loops;

  NodeGauges gauges() const {
    NodeGauges g{sessions.census(),    router.subscription_count(), router.shared_group_count(), retained.size(),
                 storage_free_bytes(), cluster.members(),           {}};
    cluster.collect_metrics(g.cluster);
    return g;
  }
  // Free space on the data directory's file system, if it can be read.
  std::optional<uint64_t> storage_free_bytes() const;
};

class NodeApi {
 public:
  explicit NodeApi(NodeView view) : view_(std::move(view)) {}
  HttpResponse handle(const HttpRequest& request) const;

 private:
  NodeView view_;
};

// The /api/v1/ part (admin_api.cpp): `may_change` when the request carried
// the configured token.
HttpResponse handle_admin(const NodeView& node, std::string_view method, const RequestTarget& target, bool may_change);

// `body` as JSON with `status`.
HttpResponse json_response(unsigned status, const nlohmann::json& body);
// {"error": message} with `status`.
HttpResponse json_error(unsigned status, std::string_view message);
// 405 naming the methods `allow`ed, also in an Allow header.
HttpResponse method_not_allowed(std::string_view method, std::string allow);

}  // namespace starling::broker
