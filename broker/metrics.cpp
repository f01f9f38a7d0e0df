#include "broker/metrics.h"

#include <algorithm>
#include <limits>

#include <prometheus/text_serializer.h>

namespace starling::broker {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

double value_of(const std::atomic<uint64_t>& counter) {
  return static_cast<double>(counter.load(std::memory_order_relaxed));
}

MetricFamily family(std::string name, std::string help, MetricType type) {
  return metric_family(std::move(name), std::move(help), type);
}

void add(MetricFamily& f, double value, std::vector<ClientMetric::Label> labels = {}) {
  add_sample(f, value, std::move(labels));
}

MetricFamily by_qos(std::string name, std::string help, const std::array<uint64_t, 3>& counters) {
  auto f = family(std::move(name), std::move(help), MetricType::Counter);
  for (size_t q = 0; q < counters.size(); ++q) {
    add(f, static_cast<double>(counters[q]), {{"qos", std::to_string(q)}});
  }
  return f;
}

// "Keep Alive timeout" -> "keep_alive_timeout": a label value that reads like one.
std::string label_of(mqtt::ReasonCode code) {
  std::string label;
  for (char c : mqtt::reason_name(code)) {
    if (c == ' ' || c == '-') {
      label += '_';
    } else {
      label += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return label;
}

MetricFamily by_reason_code(std::string name, std::string help, std::string label,
                            const std::array<Stats::Counter, 256>& counters, std::string_view success_name) {
  auto f = family(std::move(name), std::move(help), MetricType::Counter);
  for (size_t code = 0; code < counters.size(); ++code) {
    const double v = value_of(counters[code]);
    if (v == 0 && code != 0) continue;  // success is always there, so the series exists from the start
    const auto reason = static_cast<mqtt::ReasonCode>(code);
    add(f, v, {{label, code == 0 ? std::string{success_name} : label_of(reason)}});
  }
  return f;
}

}  // namespace

MetricFamily histogram_family(std::string name, std::string help, const LatencyHistogram::Snapshot& s) {
  auto f = family(std::move(name), std::move(help), MetricType::Histogram);
  ClientMetric m;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < s.counts.size(); ++i) {
    cumulative += s.counts[i];
    const double bound =
        i < LatencyHistogram::kBounds.size() ? LatencyHistogram::kBounds[i] : std::numeric_limits<double>::infinity();
    m.histogram.bucket.push_back({cumulative, bound});
  }
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = s.sum_seconds;
  f.metric.push_back(std::move(m));
  return f;
}

MetricFamily metric_family(std::string name, std::string help, MetricType type) {
  return MetricFamily{std::move(name), std::move(help), type, {}};
}

void add_sample(MetricFamily& f, double value, std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(std::move(m));
}

Metrics::Metrics(const Stats& stats, const std::string& node_id, std::string_view version)
    : stats_(stats),
      registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::BuildGauge()
      .Name("starling_build_info")
      .Help("Always 1; the labels say which version runs on which node.")
      .Register(*registry_)
      .Add({{"version", std::string{version}}, {"node_id", node_id}})
      .Set(1);
}

std::vector<MetricFamily> Metrics::collect(const NodeGauges& g) const {
  std::vector<MetricFamily> out;
  const Stats& s = stats_;
  const TrafficTotals t = s.traffic_totals();

  auto connections = family("starling_connections", "Open MQTT network connections, by listener.", MetricType::Gauge);
  auto accepted = family("starling_connections_accepted_total", "MQTT network connections accepted, by listener.",
                         MetricType::Counter);
  for (size_t l = 0; l < kListenerKinds; ++l) {
    const std::string listener{to_string(static_cast<ListenerKind>(l))};
    add(connections, value_of(s.connections_open[l]), {{"listener", listener}});
    add(accepted, value_of(s.connections_accepted[l]), {{"listener", listener}});
  }
  out.push_back(std::move(connections));
  out.push_back(std::move(accepted));

  auto clients = family("starling_clients_connected", "Connections past CONNECT.", MetricType::Gauge);
  add(clients, value_of(s.clients_connected));
  out.push_back(std::move(clients));

  out.push_back(by_reason_code("starling_connects_total", "CONNECT attempts, by CONNACK reason.", "result",
                               s.connect_results, "success"));
  auto disconnects = by_reason_code(
      "starling_disconnects_total",
      "Clients disconnected, by reason: the reason code the server sent, normal_disconnection for a client's "
      "DISCONNECT, connection_lost when the network connection ended without one.",
      "reason", s.disconnects, "normal_disconnection");
  add(disconnects, value_of(s.disconnects_lost), {{"reason", "connection_lost"}});
  out.push_back(std::move(disconnects));

  auto moved = family("starling_connections_moved_total",
                      "Connections moved to the worker thread their messages come from.", MetricType::Counter);
  add(moved, value_of(s.connections_moved));
  out.push_back(std::move(moved));

  auto sessions = family("starling_sessions", "Sessions on this node, by state.", MetricType::Gauge);
  add(sessions, static_cast<double>(g.sessions.connected), {{"state", "connected"}});
  add(sessions, static_cast<double>(g.sessions.offline), {{"state", "offline"}});
  out.push_back(std::move(sessions));

  const auto gauge = [&out](std::string name, std::string help, size_t value) {
    auto f = family(std::move(name), std::move(help), MetricType::Gauge);
    add(f, static_cast<double>(value));
    out.push_back(std::move(f));
  };
  gauge("starling_subscriptions", "Subscriptions, shared group members included.", g.subscriptions);
  gauge("starling_shared_subscription_groups", "Shared subscription groups (one share name on one filter).",
        g.shared_groups);
  gauge("starling_retained_messages", "Retained messages.", g.retained);
  gauge("starling_messages_queued", "Messages queued for sessions, not yet sent.", g.sessions.queued);
  gauge("starling_messages_inflight", "QoS 1/2 messages sent and not yet acknowledged.", g.sessions.inflight);

  out.push_back(by_qos("starling_messages_received_total", "PUBLISH packets received from clients, by QoS.",
                       t.messages_received));
  out.push_back(by_qos("starling_messages_sent_total", "PUBLISH packets sent to clients, by QoS.", t.messages_sent));
  out.push_back(by_qos("starling_message_bytes_received_total",
                       "Payload bytes of the PUBLISH packets received, by QoS.", t.payload_bytes_received));
  out.push_back(by_qos("starling_message_bytes_sent_total", "Payload bytes of the PUBLISH packets sent, by QoS.",
                       t.payload_bytes_sent));
  auto net_in = family("starling_network_bytes_received_total", "Bytes read from client connections.",
                       MetricType::Counter);
  add(net_in, static_cast<double>(t.bytes_received));
  out.push_back(std::move(net_in));
  auto net_out = family("starling_network_bytes_sent_total", "Bytes written to client connections.",
                        MetricType::Counter);
  add(net_out, static_cast<double>(t.bytes_sent));
  out.push_back(std::move(net_out));

  auto dropped = family("starling_messages_dropped_total",
                        "Messages not delivered, by reason: queue_full (publisher refused), expired, too_large (for "
                        "the subscriber), no_subscribers, slow_consumer (QoS 0, queue full), offline (QoS 0).",
                        MetricType::Counter);
  for (size_t r = 0; r < kDropReasons; ++r) {
    add(dropped, value_of(s.dropped[r]), {{"reason", std::string{to_string(static_cast<DropReason>(r))}}});
  }
  out.push_back(std::move(dropped));

  out.push_back(histogram_family("starling_delivery_latency_seconds",
                          "From a PUBLISH's arrival to its delivery being written to a subscriber's connection.",
                          t.delivery_latency));
  out.push_back(histogram_family("starling_storage_commit_duration_seconds",
                          "How long each commit to the node's store took (write and sync).",
                          s.commit_latency.snapshot()));
  if (g.storage_free_bytes) {
    gauge("starling_storage_free_bytes", "Bytes free for the node on the data directory's file system.",
          *g.storage_free_bytes);
  }
  auto failures = family("starling_storage_write_failures_total", "Store writes that failed.", MetricType::Counter);
  add(failures, value_of(s.store_write_failures));
  out.push_back(std::move(failures));

  auto members = family("starling_cluster_members", "Members of the cluster this node knows, by state (this node "
                        "included).", MetricType::Gauge);
  for (std::string_view state : {"alive", "suspect", "dead", "left"}) {
    const auto n = std::count_if(g.members.begin(), g.members.end(), [state](const auto& m) { return m.state == state; });
    add(members, static_cast<double>(n), {{"state", std::string{state}}});
  }
  out.push_back(std::move(members));
  for (const auto& f : g.cluster) out.push_back(f);
  return out;
}

std::string Metrics::serialize(const NodeGauges& gauges) const {
  auto families = registry_->Collect();
  for (auto& f : collect(gauges)) families.push_back(std::move(f));
  for (auto& f : process_metrics()) families.push_back(std::move(f));
  return prometheus::TextSerializer{}.Serialize(families);
}

}  // namespace starling::broker
