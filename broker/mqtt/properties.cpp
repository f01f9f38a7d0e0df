#include "broker/mqtt/properties.h"

#include <array>
#include <variant>

#include "broker/mqtt/packet_codec.h"
#include "broker/mqtt/topic.h"

namespace starling::mqtt {
namespace {

using C = PropertyContext;
using T = PropertyType;

constexpr uint16_t bit(C c) { return uint16_t(1u << static_cast<unsigned>(c)); }
template <class... Cs>
constexpr uint16_t in(Cs... cs) { return (bit(cs) | ...); }

constexpr uint16_t kAllAcks = in(C::kPuback, C::kPubrec, C::kPubrel, C::kPubcomp);
constexpr uint16_t kEverywhere = in(C::kConnect, C::kConnack, C::kPublish, C::kWill, C::kSubscribe,
                                    C::kSuback, C::kUnsubscribe, C::kUnsuback, C::kDisconnect, C::kAuth) |
                                 kAllAcks;

// Where each single-valued property lives in Properties. Subscription Identifier
// and User Property are lists and handled on their own.
using Field = std::variant<std::monostate, std::optional<uint8_t> Properties::*,
                           std::optional<uint16_t> Properties::*, std::optional<uint32_t> Properties::*,
                           std::optional<std::string_view> Properties::*>;

// Which values a single-byte or integer property may take (spec 3.x "It is a
// Protocol Error to include a value other than ...").
enum class Range : uint8_t { kAny, kZeroOrOne, kNonZero };

struct Entry {
  PropertyInfo info;
  Field field;
  Range range;
};

using P = Properties;
using Id = PropertyId;

// Table 2-4 of the MQTT 5 specification, in identifier order.
const std::array<Entry, 27> kTable = {{
    {{Id::kPayloadFormatIndicator, T::kByte, in(C::kPublish, C::kWill), false, "Payload Format Indicator"},
     &P::payload_format_indicator, Range::kZeroOrOne},
    {{Id::kMessageExpiryInterval, T::kFourByte, in(C::kPublish, C::kWill), false, "Message Expiry Interval"},
     &P::message_expiry_interval, Range::kAny},
    {{Id::kContentType, T::kString, in(C::kPublish, C::kWill), false, "Content Type"}, &P::content_type, Range::kAny},
    {{Id::kResponseTopic, T::kString, in(C::kPublish, C::kWill), false, "Response Topic"}, &P::response_topic,
     Range::kAny},
    {{Id::kCorrelationData, T::kBinary, in(C::kPublish, C::kWill), false, "Correlation Data"}, &P::correlation_data,
     Range::kAny},
    {{Id::kSubscriptionIdentifier, T::kVarInt, in(C::kPublish, C::kSubscribe), true, "Subscription Identifier"},
     std::monostate{}, Range::kNonZero},
    {{Id::kSessionExpiryInterval, T::kFourByte, in(C::kConnect, C::kConnack, C::kDisconnect), false,
      "Session Expiry Interval"},
     &P::session_expiry_interval, Range::kAny},
    {{Id::kAssignedClientIdentifier, T::kString, in(C::kConnack), false, "Assigned Client Identifier"},
     &P::assigned_client_identifier, Range::kAny},
    {{Id::kServerKeepAlive, T::kTwoByte, in(C::kConnack), false, "Server Keep Alive"}, &P::server_keep_alive,
     Range::kAny},
    {{Id::kAuthenticationMethod, T::kString, in(C::kConnect, C::kConnack, C::kAuth), false,
      "Authentication Method"},
     &P::authentication_method, Range::kAny},
    {{Id::kAuthenticationData, T::kBinary, in(C::kConnect, C::kConnack, C::kAuth), false, "Authentication Data"},
     &P::authentication_data, Range::kAny},
    {{Id::kRequestProblemInformation, T::kByte, in(C::kConnect), false, "Request Problem Information"},
     &P::request_problem_information, Range::kZeroOrOne},
    {{Id::kWillDelayInterval, T::kFourByte, in(C::kWill), false, "Will Delay Interval"}, &P::will_delay_interval,
     Range::kAny},
    {{Id::kRequestResponseInformation, T::kByte, in(C::kConnect), false, "Request Response Information"},
     &P::request_response_information, Range::kZeroOrOne},
    {{Id::kResponseInformation, T::kString, in(C::kConnack), false, "Response Information"},
     &P::response_information, Range::kAny},
    {{Id::kServerReference, T::kString, in(C::kConnack, C::kDisconnect), false, "Server Reference"},
     &P::server_reference, Range::kAny},
    {{Id::kReasonString, T::kString,
      in(C::kConnack, C::kSuback, C::kUnsuback, C::kDisconnect, C::kAuth) | kAllAcks, false, "Reason String"},
     &P::reason_string, Range::kAny},
    {{Id::kReceiveMaximum, T::kTwoByte, in(C::kConnect, C::kConnack), false, "Receive Maximum"},
     &P::receive_maximum, Range::kNonZero},
    {{Id::kTopicAliasMaximum, T::kTwoByte, in(C::kConnect, C::kConnack), false, "Topic Alias Maximum"},
     &P::topic_alias_maximum, Range::kAny},
    {{Id::kTopicAlias, T::kTwoByte, in(C::kPublish), false, "Topic Alias"}, &P::topic_alias, Range::kNonZero},
    {{Id::kMaximumQos, T::kByte, in(C::kConnack), false, "Maximum QoS"}, &P::maximum_qos, Range::kZeroOrOne},
    {{Id::kRetainAvailable, T::kByte, in(C::kConnack), false, "Retain Available"}, &P::retain_available,
     Range::kZeroOrOne},
    {{Id::kUserProperty, T::kStringPair, kEverywhere, true, "User Property"}, std::monostate{}, Range::kAny},
    {{Id::kMaximumPacketSize, T::kFourByte, in(C::kConnect, C::kConnack), false, "Maximum Packet Size"},
     &P::maximum_packet_size, Range::kNonZero},
    {{Id::kWildcardSubscriptionAvailable, T::kByte, in(C::kConnack), false, "Wildcard Subscription Available"},
     &P::wildcard_subscription_available, Range::kZeroOrOne},
    {{Id::kSubscriptionIdentifierAvailable, T::kByte, in(C::kConnack), false,
      "Subscription Identifier Available"},
     &P::subscription_identifier_available, Range::kZeroOrOne},
    {{Id::kSharedSubscriptionAvailable, T::kByte, in(C::kConnack), false, "Shared Subscription Available"},
     &P::shared_subscription_available, Range::kZeroOrOne},
}};

const Entry* find_entry(uint32_t id) {
  static const std::array<const Entry*, 64> kById = [] {
    std::array<const Entry*, 64> by_id{};
    for (const Entry& e : kTable) by_id[static_cast<size_t>(e.info.id)] = &e;
    return by_id;
  }();
  return id < kById.size() ? kById[id] : nullptr;
}

constexpr Error kDuplicate{ReasonCode::kProtocolError, "property included more than once"};
constexpr Error kOutOfRange{ReasonCode::kProtocolError, "property value out of range"};

bool in_range(uint32_t v, Range range) {
  switch (range) {
    case Range::kAny: return true;
    case Range::kZeroOrOne: return v <= 1;
    case Range::kNonZero: return v != 0;
  }
  return false;
}

Status read_one(detail::Reader& r, const Entry& e, Properties& out) {
  using detail::Reader;
  uint32_t number = 0;
  std::string_view text;
  switch (e.info.type) {
    case T::kByte: {
      uint8_t v = 0;
      MQTT_TRY(r.u8(v));
      number = v;
      break;
    }
    case T::kTwoByte: {
      uint16_t v = 0;
      MQTT_TRY(r.u16(v));
      number = v;
      break;
    }
    case T::kFourByte: MQTT_TRY(r.u32(number)); break;
    case T::kVarInt: MQTT_TRY(r.varint(number)); break;
    case T::kString: MQTT_TRY(r.string(text)); break;
    case T::kBinary: MQTT_TRY(r.binary(text)); break;
    case T::kStringPair: {
      UserProperty up;
      MQTT_TRY(r.string(up.name));
      MQTT_TRY(r.string(up.value));
      out.user_properties.push_back(up);
      return {};
    }
  }
  if (!in_range(number, e.range)) {
    // [MQTT-3.3.2-8] answered with 0x94 (3.3.2.3.4).
    if (e.info.id == Id::kTopicAlias) return Error{ReasonCode::kTopicAliasInvalid, "topic alias 0"};
    return kOutOfRange;
  }
  if (e.info.id == Id::kSubscriptionIdentifier) {
    out.subscription_identifiers.push_back(number);
    return {};
  }
  if (e.info.id == Id::kResponseTopic) {
    // [MQTT-3.3.2-14] a Topic Name: no wildcards.
    MQTT_TRY(validate_topic_name(text));
  }
  return std::visit(
      [&](auto member) -> Status {
        using M = decltype(member);
        if constexpr (std::is_same_v<M, std::monostate>) {
          return {};
        } else {
          auto& field = out.*member;
          if (field.has_value()) return kDuplicate;
          using V = typename std::remove_reference_t<decltype(field)>::value_type;
          if constexpr (std::is_same_v<V, std::string_view>) {
            field = text;
          } else {
            field = static_cast<V>(number);
          }
          return {};
        }
      },
      e.field);
}

void write_value(const Entry& e, uint32_t number, detail::Writer& w) {
  switch (e.info.type) {
    case T::kByte: w.u8(static_cast<uint8_t>(number)); break;
    case T::kTwoByte: w.u16(static_cast<uint16_t>(number)); break;
    case T::kFourByte: w.u32(number); break;
    case T::kVarInt: w.varint(number); break;
    default: break;
  }
}

void write_all(const Properties& props, detail::Writer& w) {
  for (const Entry& e : kTable) {
    auto id = static_cast<uint8_t>(e.info.id);
    if (e.info.id == Id::kSubscriptionIdentifier) {
      for (uint32_t sid : props.subscription_identifiers) {
        w.u8(id);
        w.varint(sid);
      }
      continue;
    }
    if (e.info.id == Id::kUserProperty) {
      for (const UserProperty& up : props.user_properties) {
        w.u8(id);
        w.string(up.name);
        w.string(up.value);
      }
      continue;
    }
    std::visit(
        [&](auto member) {
          using M = decltype(member);
          if constexpr (!std::is_same_v<M, std::monostate>) {
            const auto& field = props.*member;
            if (!field.has_value()) return;
            w.u8(id);
            using V = typename std::remove_reference_t<decltype(field)>::value_type;
            if constexpr (std::is_same_v<V, std::string_view>) {
              w.string(*field);
            } else {
              write_value(e, *field, w);
            }
          }
        },
        e.field);
  }
}

}  // namespace

const PropertyInfo* property_info(uint8_t id) {
  const Entry* e = find_entry(id);
  return e != nullptr ? &e->info : nullptr;
}

bool property_allowed_in(PropertyId id, PropertyContext ctx) {
  const Entry* e = find_entry(static_cast<uint8_t>(id));
  return e != nullptr && (e->info.contexts & bit(ctx)) != 0;
}

bool Properties::empty() const {
  static const Properties kNone;
  return *this == kNone;
}

Status check_properties_allowed(const Properties& props, PropertyContext ctx) {
  constexpr Error kNotAllowed{ReasonCode::kMalformedPacket, "property not allowed in this packet"};
  if (props.empty()) return {};  // the common case, on every acknowledgement
  for (const Entry& e : kTable) {
    bool present = false;
    bool valid = true;
    if (e.info.id == Id::kSubscriptionIdentifier) {
      present = !props.subscription_identifiers.empty();
      if (ctx == C::kSubscribe && props.subscription_identifiers.size() > 1) return kDuplicate;
      for (uint32_t sid : props.subscription_identifiers) valid = valid && sid != 0 && sid <= kMaxRemainingLength;
    } else if (e.info.id == Id::kUserProperty) {
      present = !props.user_properties.empty();
    } else {
      std::visit(
          [&](auto member) {
            if constexpr (!std::is_same_v<decltype(member), std::monostate>) {
              const auto& field = props.*member;
              present = field.has_value();
              using V = typename std::remove_reference_t<decltype(field)>::value_type;
              if constexpr (!std::is_same_v<V, std::string_view>) {
                valid = !present || in_range(*field, e.range);
              }
            }
          },
          e.field);
    }
    if (!present) continue;
    if ((e.info.contexts & bit(ctx)) == 0) return kNotAllowed;
    if (!valid) return kOutOfRange;
  }
  if (props.response_topic) MQTT_TRY(validate_topic_name(*props.response_topic));
  if (props.authentication_data && !props.authentication_method)
    return Error{ReasonCode::kProtocolError, "authentication data without authentication method"};
  return {};
}

namespace detail {

PropertyContext context_of(PacketType type) {
  switch (type) {
    case PacketType::kConnect: return C::kConnect;
    case PacketType::kConnack: return C::kConnack;
    case PacketType::kPublish: return C::kPublish;
    case PacketType::kPuback: return C::kPuback;
    case PacketType::kPubrec: return C::kPubrec;
    case PacketType::kPubrel: return C::kPubrel;
    case PacketType::kPubcomp: return C::kPubcomp;
    case PacketType::kSubscribe: return C::kSubscribe;
    case PacketType::kSuback: return C::kSuback;
    case PacketType::kUnsubscribe: return C::kUnsubscribe;
    case PacketType::kUnsuback: return C::kUnsuback;
    case PacketType::kDisconnect: return C::kDisconnect;
    default: return C::kAuth;
  }
}

Status read_properties(Reader& r, PropertyContext ctx, Properties& out) {
  uint32_t length = 0;
  MQTT_TRY(r.varint(length));
  Reader props = r;
  MQTT_TRY(props.split(length, r));
  while (!props.at_end()) {
    uint32_t id = 0;
    MQTT_TRY(props.varint(id));
    const Entry* e = find_entry(id);
    if (e == nullptr) return Error{ReasonCode::kMalformedPacket, "unknown property identifier"};
    if ((e->info.contexts & bit(ctx)) == 0)
      return Error{ReasonCode::kMalformedPacket, "property not allowed in this packet"};
    if (e->info.id == Id::kSubscriptionIdentifier && ctx == C::kSubscribe &&
        !out.subscription_identifiers.empty())
      return kDuplicate;
    MQTT_TRY(read_one(props, *e, out));
  }
  if (out.authentication_data && !out.authentication_method)
    return Error{ReasonCode::kProtocolError, "authentication data without authentication method"};
  return {};
}

Status read_reason_and_properties(Reader& r, PacketType type, ReasonCode& code, Properties& props) {
  if (r.at_end()) return {};
  uint8_t byte = 0;
  MQTT_TRY(r.u8(byte));
  code = static_cast<ReasonCode>(byte);
  if (!reason_allowed_in(code, type))
    return Error{ReasonCode::kMalformedPacket, "reason code not allowed in this packet"};
  if (!r.at_end()) MQTT_TRY(read_properties(r, context_of(type), props));
  return {};
}

void write_reason_and_properties(ReasonCode code, const Properties& props, Writer& w) {
  const bool no_props = props.empty();
  if (code != ReasonCode::kSuccess || !no_props) w.u8(static_cast<uint8_t>(code));
  if (!no_props) write_properties(props, w);
}

void write_properties(const Properties& props, Writer& w) {
  if (props.empty()) {  // most PUBLISHes: just the zero length
    w.varint(0);
    return;
  }
  Writer counter;
  write_all(props, counter);
  if (counter.failed()) {
    w.fail();
    return;
  }
  w.varint(static_cast<uint32_t>(counter.size()));
  write_all(props, w);
}

Status check_properties_for(const Properties& props, PropertyContext ctx, ProtocolVersion v) {
  if (!is_v5(v)) return {};  // left out for older clients
  return check_properties_allowed(props, ctx);
}

}  // namespace detail
std::vector<uint8_t> encode_properties(const Properties& props) {
  detail::Writer counter;
  detail::write_properties(props, counter);
  std::vector<uint8_t> out(counter.size());
  detail::Writer w(out.data());
  detail::write_properties(props, w);
  return out;
}

Status decode_properties(std::span<const uint8_t> bytes, PropertyContext ctx, Properties& out) {
  detail::Reader r(bytes);
  MQTT_TRY(detail::read_properties(r, ctx, out));
  if (!r.at_end()) return Error{ReasonCode::kMalformedPacket, "bytes after the properties"};
  return {};
}

}  // namespace starling::mqtt
