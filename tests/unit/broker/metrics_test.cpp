#include "broker/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace starling::broker {
namespace {

bool has(const std::string& text, const std::string& line) { return text.find("\n" + line + "\n") != std::string::npos; }

TEST(Metrics, CountersFromStatsAppearByLabel) {
  Stats stats;
  Metrics metrics(stats, "n1", "9.9.9");
  stats.traffic(0).messages_received[1].fetch_add(3);
  stats.traffic(-1).payload_bytes_received[1].fetch_add(30);
  stats.connections_open[static_cast<size_t>(ListenerKind::kWebSocket)].fetch_add(2);
  stats.count_drop(DropReason::kNoSubscribers, 4);
  stats.disconnects[static_cast<uint8_t>(mqtt::ReasonCode::kKeepAliveTimeout)].fetch_add(1);
  stats.disconnects_lost.fetch_add(5);
  stats.connect_results[static_cast<uint8_t>(mqtt::ReasonCode::kNotAuthorized)].fetch_add(1);
  std::vector<prometheus::MetricFamily> cluster{metric_family("starling_cluster_x_total", "X.",
                                                             prometheus::MetricType::Counter)};
  add_sample(cluster.back(), 6);
  const std::string text = metrics.serialize(NodeGauges{
      {1, 2, 7, 3}, 11, 1, 4, 12345,
      {{"n1", "", "alive", 0, true}, {"n2", "a:1", "alive", 2, false}, {"n3", "b:1", "dead", 0, false}},
      std::move(cluster)});

  EXPECT_NE(text.find("# TYPE starling_messages_received_total counter"), std::string::npos) << text;
  EXPECT_TRUE(has(text, "starling_messages_received_total{qos=\"1\"} 3")) << text;
  EXPECT_TRUE(has(text, "starling_messages_received_total{qos=\"0\"} 0")) << text;
  EXPECT_TRUE(has(text, "starling_message_bytes_received_total{qos=\"1\"} 30")) << text;
  EXPECT_TRUE(has(text, "starling_connections{listener=\"ws\"} 2")) << text;
  EXPECT_TRUE(has(text, "starling_connections{listener=\"mqtt\"} 0")) << text;
  EXPECT_TRUE(has(text, "starling_messages_dropped_total{reason=\"no_subscribers\"} 4")) << text;
  EXPECT_TRUE(has(text, "starling_disconnects_total{reason=\"keep_alive_timeout\"} 1")) << text;
  EXPECT_TRUE(has(text, "starling_disconnects_total{reason=\"connection_lost\"} 5")) << text;
  EXPECT_TRUE(has(text, "starling_connects_total{result=\"not_authorized\"} 1")) << text;
  EXPECT_TRUE(has(text, "starling_connects_total{result=\"success\"} 0")) << text;
  EXPECT_TRUE(has(text, "starling_sessions{state=\"connected\"} 1")) << text;
  EXPECT_TRUE(has(text, "starling_sessions{state=\"offline\"} 2")) << text;
  EXPECT_TRUE(has(text, "starling_messages_queued 7")) << text;
  EXPECT_TRUE(has(text, "starling_messages_inflight 3")) << text;
  EXPECT_TRUE(has(text, "starling_subscriptions 11")) << text;
  EXPECT_TRUE(has(text, "starling_shared_subscription_groups 1")) << text;
  EXPECT_TRUE(has(text, "starling_retained_messages 4")) << text;
  EXPECT_TRUE(has(text, "starling_storage_free_bytes 12345")) << text;
  EXPECT_TRUE(has(text, "starling_build_info{node_id=\"n1\",version=\"9.9.9\"} 1")) << text;
  EXPECT_TRUE(has(text, "starling_cluster_members{state=\"alive\"} 2")) << text;
  EXPECT_TRUE(has(text, "starling_cluster_members{state=\"dead\"} 1")) << text;
  EXPECT_TRUE(has(text, "starling_cluster_members{state=\"left\"} 0")) << text;
  EXPECT_TRUE(has(text, "starling_cluster_x_total 6")) << text;
  EXPECT_NE(text.find("\nprocess_resident_memory_bytes "), std::string::npos) << text;
  EXPECT_NE(text.find("\nprocess_open_fds "), std::string::npos) << text;
}

TEST(Metrics, HistogramBucketsAreCumulativeAndSummedOverWorkers) {
  Stats stats(2);
  Metrics metrics(stats, "n1", "1");
  stats.traffic(0).delivery_latency.observe(std::chrono::microseconds(50));   // first bucket (100 us)
  stats.traffic(1).delivery_latency.observe(std::chrono::milliseconds(3));    // 5 ms
  stats.traffic(-1).delivery_latency.observe(std::chrono::seconds(20));        // +Inf only
  const std::string text = metrics.serialize(NodeGauges{});
  EXPECT_TRUE(has(text, "starling_delivery_latency_seconds_bucket{le=\"0.0001\"} 1")) << text;
  EXPECT_TRUE(has(text, "starling_delivery_latency_seconds_bucket{le=\"0.0025\"} 1")) << text;
  EXPECT_TRUE(has(text, "starling_delivery_latency_seconds_bucket{le=\"0.005\"} 2")) << text;
  EXPECT_TRUE(has(text, "starling_delivery_latency_seconds_bucket{le=\"10\"} 2")) << text;
  EXPECT_TRUE(has(text, "starling_delivery_latency_seconds_bucket{le=\"+Inf\"} 3")) << text;
  EXPECT_TRUE(has(text, "starling_delivery_latency_seconds_count 3")) << text;
}

TEST(LatencyHistogram, SumIsInSeconds) {
  LatencyHistogram h;
  h.observe(std::chrono::milliseconds(250));
  h.observe(std::chrono::milliseconds(750));
  const auto s = h.snapshot();
  EXPECT_EQ(s.count(), 2u);
  EXPECT_DOUBLE_EQ(s.sum_seconds, 1.0);
}

}  // namespace
}  // namespace starling::broker
