#include "broker/sys_topics.h"

#include <cstring>
#include <string>

#include "broker/config.h"

namespace starling::broker {
namespace {

void publish_value(SessionRegistry& sessions, std::string topic, const std::string& value, Clock::time_point now) {
  auto bytes = std::make_shared_for_overwrite<uint8_t[]>(value.size());
  std::memcpy(bytes.get(), value.data(), value.size());
  std::string_view payload(reinterpret_cast<const char*>(bytes.get()), value.size());
  sessions.publish_internal(
      make_message(std::move(topic), payload, mqtt::QoS::k0, /*retain=*/true, {}, 0, std::move(bytes), now), now);
}

}  // namespace

void publish_sys_topics(const SysSnapshot& s, SessionRegistry& sessions, Clock::time_point now) {
  auto n = [](uint64_t v) { return std::to_string(v); };
  const auto load = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  const TrafficTotals traffic = s.stats.traffic_totals();
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(now - s.started).count();
  publish_value(sessions, "$SYS/broker/version", "starling " + std::string(version()), now);
  publish_value(sessions, "$SYS/broker/uptime", std::to_string(uptime) + " seconds", now);
  publish_value(sessions, "$SYS/broker/clients/connected", n(load(s.stats.connections)), now);
  publish_value(sessions, "$SYS/broker/clients/total", n(s.sessions), now);
  // Connections that moved to the worker their messages come from.
  publish_value(sessions, "$SYS/broker/clients/moved", n(load(s.stats.connections_moved)), now);
  publish_value(sessions, "$SYS/broker/messages/received", n(Stats::sum(traffic.messages_received)), now);
  publish_value(sessions, "$SYS/broker/messages/sent", n(Stats::sum(traffic.messages_sent)), now);
  publish_value(sessions, "$SYS/broker/messages/dropped", n(Stats::sum(s.stats.dropped)), now);
  publish_value(sessions, "$SYS/broker/bytes/received", n(traffic.bytes_received), now);
  publish_value(sessions, "$SYS/broker/bytes/sent", n(traffic.bytes_sent), now);
  publish_value(sessions, "$SYS/broker/subscriptions/count", n(s.subscriptions), now);
  publish_value(sessions, "$SYS/broker/retained messages/count", n(s.retained), now);
}

}  // namespace starling::broker
