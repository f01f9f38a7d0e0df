#include "broker/message.h"

#include <random>

namespace starling::broker {

std::optional<uint32_t> Message::remaining_expiry(Clock::time_point now) const {
  if (!expires_at) return std::nullopt;
  auto left = std::chrono::ceil<std::chrono::seconds>(*expires_at - now).count();
  return static_cast<uint32_t>(left > 0 ? left : 0);
}

uint64_t new_message_origin() {
  std::random_device device;
  const uint64_t origin = (uint64_t{device()} << 32) ^ device();
  return origin != 0 ? origin : 1;
}

MessagePtr make_message(std::string topic, std::string_view payload, mqtt::QoS qos, bool retain,
                        const mqtt::Properties& props, SessionId publisher, mqtt::SharedBytes backing,
                        Clock::time_point now, MessageId id) {
  auto m = std::make_shared<Message>();
  m->topic = std::move(topic);
  m->payload = payload;
  m->qos = qos;
  m->retain = retain;
  if (props.payload_format_indicator || props.content_type || props.response_topic || props.correlation_data ||
      !props.user_properties.empty()) {
    auto forwarded = std::make_shared<mqtt::Properties>();
    forwarded->payload_format_indicator = props.payload_format_indicator;
    forwarded->content_type = props.content_type;
    forwarded->response_topic = props.response_topic;
    forwarded->correlation_data = props.correlation_data;
    forwarded->user_properties = props.user_properties;
    m->properties = std::move(forwarded);
  }
  if (props.message_expiry_interval) m->expires_at = now + std::chrono::seconds(*props.message_expiry_interval);
  m->received_at = now;
  m->publisher = publisher;
  m->id = id;
  m->backing = std::move(backing);
  return m;
}

}  // namespace starling::broker
