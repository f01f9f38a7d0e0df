// MQTT 5 properties (spec 2.2.2): their identifiers, types, the packets each may
// appear in, and the rule on duplicates. MQTT 3.1/3.1.1 packets carry none.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "broker/mqtt/result.h"

namespace starling::mqtt {

enum class PropertyId : uint8_t {
  kPayloadFormatIndicator = 0x01,
  kMessageExpiryInterval = 0x02,
  kContentType = 0x03,
  kResponseTopic = 0x08,
  kCorrelationData = 0x09,
  kSubscriptionIdentifier = 0x0B,
  kSessionExpiryInterval = 0x11,
  kAssignedClientIdentifier = 0x12,
  kServerKeepAlive = 0x13,
  kAuthenticationMethod = 0x15,
  kAuthenticationData = 0x16,
  kRequestProblemInformation = 0x17,
  kWillDelayInterval = 0x18,
  kRequestResponseInformation = 0x19,
  kResponseInformation = 0x1A,
  kServerReference = 0x1C,
  kReasonString = 0x1F,
  kReceiveMaximum = 0x21,
  kTopicAliasMaximum = 0x22,
  kTopicAlias = 0x23,
  kMaximumQos = 0x24,
  kRetainAvailable = 0x25,
  kUserProperty = 0x26,
  kMaximumPacketSize = 0x27,
  kWildcardSubscriptionAvailable = 0x28,
  kSubscriptionIdentifierAvailable = 0x29,
  kSharedSubscriptionAvailable = 0x2A,
};

// Where a property set sits: a packet type, or the will properties of CONNECT.
enum class PropertyContext : uint8_t {
  kConnect, kConnack, kPublish, kPuback, kPubrec, kPubrel, kPubcomp,
  kSubscribe, kSuback, kUnsubscribe, kUnsuback, kDisconnect, kAuth, kWill,
};

enum class PropertyType : uint8_t { kByte, kTwoByte, kFourByte, kVarInt, kString, kBinary, kStringPair };

struct PropertyInfo {
  PropertyId id;
  PropertyType type;
  uint16_t contexts;   // bit (1 << PropertyContext) for every context it may appear in
  bool repeatable;     // User Property anywhere, Subscription Identifier in PUBLISH
  std::string_view name;
};

// nullptr for an identifier the spec does not define.
const PropertyInfo* property_info(uint8_t id);
bool property_allowed_in(PropertyId id, PropertyContext ctx);

struct UserProperty {
  std::string_view name;
  std::string_view value;
  friend bool operator==(const UserProperty&, const UserProperty&) = default;
};

// Every property of every packet. Strings and binary data are views into the
// packet's backing buffer (decoding) or the caller's storage (encoding).
// Binary data is held in a string_view too: it is just bytes.
struct Properties {
  std::optional<uint8_t> payload_format_indicator;
  std::optional<uint32_t> message_expiry_interval;
  std::optional<std::string_view> content_type;
  std::optional<std::string_view> response_topic;
  std::optional<std::string_view> correlation_data;
  std::vector<uint32_t> subscription_identifiers;  // several in PUBLISH, one in SUBSCRIBE
  std::optional<uint32_t> session_expiry_interval;
  std::optional<std::string_view> assigned_client_identifier;
  std::optional<uint16_t> server_keep_alive;
  std::optional<std::string_view> authentication_method;
  std::optional<std::string_view> authentication_data;
  std::optional<uint8_t> request_problem_information;
  std::optional<uint32_t> will_delay_interval;
  std::optional<uint8_t> request_response_information;
  std::optional<std::string_view> response_information;
  std::optional<std::string_view> server_reference;
  std::optional<std::string_view> reason_string;
  std::optional<uint16_t> receive_maximum;
  std::optional<uint16_t> topic_alias_maximum;
  std::optional<uint16_t> topic_alias;
  std::optional<uint8_t> maximum_qos;
  std::optional<uint8_t> retain_available;
  std::vector<UserProperty> user_properties;
  std::optional<uint32_t> maximum_packet_size;
  std::optional<uint8_t> wildcard_subscription_available;
  std::optional<uint8_t> subscription_identifier_available;
  std::optional<uint8_t> shared_subscription_available;

  bool empty() const;
  friend bool operator==(const Properties&, const Properties&) = default;
};

// Every property that is set, all of them allowed in `ctx`. The encoder refuses
// to write a property outside its packet.
Status check_properties_allowed(const Properties& props, PropertyContext ctx);

// A property section on its own (its length prefix included), as it is kept
// outside a packet, e.g. with a stored message. Decoding checks every property
// is allowed in `ctx`; the strings of `out` point into `bytes`.
std::vector<uint8_t> encode_properties(const Properties& props);
Status decode_properties(std::span<const uint8_t> bytes, PropertyContext ctx, Properties& out);

}  // namespace starling::mqtt
