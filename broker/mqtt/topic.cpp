#include "broker/mqtt/topic.h"

namespace starling::mqtt {
namespace {

constexpr std::string_view kSharePrefix = "$share/";
constexpr size_t kMaxStringBytes = 65535;  // a two-byte length prefix

Status check_filter_levels(std::string_view filter) {
  if (filter.empty()) return Error{ReasonCode::kMalformedPacket, "empty topic filter"};
  size_t level_start = 0;
  for (size_t i = 0; i < filter.size(); ++i) {
    char c = filter[i];
    if (c == '/') {
      level_start = i + 1;
    } else if (c == '#') {
      // [MQTT-4.7.1-1] alone in its level and the last character.
      if (i != level_start || i + 1 != filter.size())
        return Error{ReasonCode::kMalformedPacket, "'#' not alone in the last level of a topic filter"};
    } else if (c == '+') {
      // [MQTT-4.7.1-2] alone in its level.
      bool ends_level = i + 1 == filter.size() || filter[i + 1] == '/';
      if (i != level_start || !ends_level)
        return Error{ReasonCode::kMalformedPacket, "'+' not alone in its level of a topic filter"};
    }
  }
  return {};
}

}  // namespace

Status validate_topic_name(std::string_view topic) {
  if (topic.empty()) return Error{ReasonCode::kMalformedPacket, "empty topic name"};
  if (topic.size() > kMaxStringBytes) return Error{ReasonCode::kMalformedPacket, "topic name too long"};
  if (topic.find_first_of("+#") != std::string_view::npos)
    return Error{ReasonCode::kMalformedPacket, "wildcard in topic name"};  // [MQTT-3.3.2-2]
  return {};
}

Status validate_topic_filter(std::string_view filter) {
  if (filter.size() > kMaxStringBytes) return Error{ReasonCode::kMalformedPacket, "topic filter too long"};
  if (filter.substr(0, kSharePrefix.size()) == kSharePrefix) {
    std::string_view rest = filter.substr(kSharePrefix.size());
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos)
      return Error{ReasonCode::kMalformedPacket, "shared subscription without a topic filter"};
    std::string_view group = rest.substr(0, slash);
    if (group.empty()) return Error{ReasonCode::kMalformedPacket, "shared subscription with an empty group"};
    if (group.find_first_of("+#") != std::string_view::npos)
      return Error{ReasonCode::kMalformedPacket, "wildcard in a shared subscription group"};
    return check_filter_levels(rest.substr(slash + 1));
  }
  return check_filter_levels(filter);
}

std::optional<SharedFilter> parse_shared_filter(std::string_view filter) {
  if (filter.substr(0, kSharePrefix.size()) != kSharePrefix) return std::nullopt;
  std::string_view rest = filter.substr(kSharePrefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  return SharedFilter{rest.substr(0, slash), rest.substr(slash + 1)};
}

}  // namespace starling::mqtt
