#include "tests/support/mqtt_samples.h"

namespace starling::mqtt::test {
namespace {

using C = PropertyContext;

template <class T>
void set_if(PropertyId id, PropertyContext ctx, std::optional<T>& field, T value) {
  if (property_allowed_in(id, ctx)) field = value;
}

bool v5(ProtocolVersion v) { return v == ProtocolVersion::kV5; }

Properties props_if(ProtocolVersion v, PropertyContext ctx) { return v5(v) ? full_properties(ctx) : Properties{}; }

}  // namespace

Properties full_properties(PropertyContext ctx) {
  using Id = PropertyId;
  Properties p;
  set_if<uint8_t>(Id::kPayloadFormatIndicator, ctx, p.payload_format_indicator, 1);
  set_if<uint32_t>(Id::kMessageExpiryInterval, ctx, p.message_expiry_interval, 3600);
  set_if<std::string_view>(Id::kContentType, ctx, p.content_type, "application/json");
  set_if<std::string_view>(Id::kResponseTopic, ctx, p.response_topic, "reply/to/me");
  set_if<std::string_view>(Id::kCorrelationData, ctx, p.correlation_data, std::string_view("\x00\x01\xFF", 3));
  if (property_allowed_in(Id::kSubscriptionIdentifier, ctx)) {
    p.subscription_identifiers = ctx == C::kPublish ? std::vector<uint32_t>{1, 200, 268'435'455}
                                                    : std::vector<uint32_t>{16'384};
  }
  set_if<uint32_t>(Id::kSessionExpiryInterval, ctx, p.session_expiry_interval, 0xFFFFFFFF);
  set_if<std::string_view>(Id::kAssignedClientIdentifier, ctx, p.assigned_client_identifier, "auto-1234");
  set_if<uint16_t>(Id::kServerKeepAlive, ctx, p.server_keep_alive, 30);
  set_if<std::string_view>(Id::kAuthenticationMethod, ctx, p.authentication_method, "SCRAM-SHA-1");
  set_if<std::string_view>(Id::kAuthenticationData, ctx, p.authentication_data, std::string_view("\x00\x10", 2));
  set_if<uint8_t>(Id::kRequestProblemInformation, ctx, p.request_problem_information, 0);
  set_if<uint32_t>(Id::kWillDelayInterval, ctx, p.will_delay_interval, 5);
  set_if<uint8_t>(Id::kRequestResponseInformation, ctx, p.request_response_information, 1);
  set_if<std::string_view>(Id::kResponseInformation, ctx, p.response_information, "resp/");
  set_if<std::string_view>(Id::kServerReference, ctx, p.server_reference, "other.example:1883");
  set_if<std::string_view>(Id::kReasonString, ctx, p.reason_string, "because \xC3\xA9t\xC3\xA9");
  set_if<uint16_t>(Id::kReceiveMaximum, ctx, p.receive_maximum, 20);
  set_if<uint16_t>(Id::kTopicAliasMaximum, ctx, p.topic_alias_maximum, 10);
  set_if<uint16_t>(Id::kTopicAlias, ctx, p.topic_alias, 7);
  set_if<uint8_t>(Id::kMaximumQos, ctx, p.maximum_qos, 1);
  set_if<uint8_t>(Id::kRetainAvailable, ctx, p.retain_available, 0);
  p.user_properties = {{"k", "v"}, {"k", "v2"}, {"", ""}};
  set_if<uint32_t>(Id::kMaximumPacketSize, ctx, p.maximum_packet_size, 1'048'576);
  set_if<uint8_t>(Id::kWildcardSubscriptionAvailable, ctx, p.wildcard_subscription_available, 1);
  set_if<uint8_t>(Id::kSubscriptionIdentifierAvailable, ctx, p.subscription_identifier_available, 0);
  set_if<uint8_t>(Id::kSharedSubscriptionAvailable, ctx, p.shared_subscription_available, 1);
  return p;
}

std::vector<Packet> sample_packets(ProtocolVersion v) {
  static const std::string kBig(20'000, 'x');  // remaining length needs 3 bytes
  std::vector<Packet> out;

  // CONNECT: everything set, then the smallest.
  Connect full;
  full.version = v;
  full.client_id = "client-\xE2\x82\xAC";
  full.clean_start = false;
  full.keep_alive = 60;
  full.username = "user";
  full.password = std::string_view("p\x00ss", 4);
  full.properties = props_if(v, C::kConnect);
  full.will = Will{"will/topic", std::string_view("bye\x00", 4), QoS::k2, true, props_if(v, C::kWill)};
  out.push_back(full);
  Connect minimal;
  minimal.version = v;
  minimal.client_id = v == ProtocolVersion::kV31 ? "c" : "";
  out.push_back(minimal);
  Connect will_qos1 = minimal;
  will_qos1.will = Will{"w", "", QoS::k1, false, {}};
  will_qos1.username = "only-user";
  out.push_back(will_qos1);

  Connack ack;
  ack.session_present = true;
  ack.properties = props_if(v, C::kConnack);
  out.push_back(ack);
  Connack refused;
  refused.reason_code = ReasonCode::kNotAuthorized;
  out.push_back(refused);

  // PUBLISH at every QoS and flag.
  for (uint8_t q = 0; q <= 2; ++q) {
    Publish p;
    p.topic = "a/b/c";
    p.payload = "hello";
    p.qos = static_cast<QoS>(q);
    p.retain = q == 1;
    p.dup = q == 2;
    p.packet_id = q == 0 ? 0 : static_cast<uint16_t>(q == 1 ? 1 : 65535);
    p.properties = props_if(v, C::kPublish);
    out.push_back(p);
  }
  Publish empty_payload;
  empty_payload.topic = "$SYS/x";
  out.push_back(empty_payload);
  Publish big;
  big.topic = "big";
  big.payload = kBig;
  big.qos = QoS::k1;
  big.packet_id = 42;
  out.push_back(big);
  if (v5(v)) {
    Publish aliased;  // topic replaced by an alias
    aliased.payload = std::string_view("\x00\x01", 2);
    aliased.properties.topic_alias = 3;
    out.push_back(aliased);
  }

  Puback puback;
  puback.packet_id = 1;
  out.push_back(puback);
  Pubrec pubrec;
  pubrec.packet_id = 2;
  if (v5(v)) pubrec.reason_code = ReasonCode::kNoMatchingSubscribers;
  out.push_back(pubrec);
  Pubrel pubrel;
  pubrel.packet_id = 3;
  pubrel.properties = props_if(v, C::kPubrel);
  if (v5(v)) pubrel.reason_code = ReasonCode::kPacketIdentifierNotFound;
  out.push_back(pubrel);
  Pubcomp pubcomp;
  pubcomp.packet_id = 65535;
  pubcomp.properties = props_if(v, C::kPubcomp);
  out.push_back(pubcomp);
  Puback puback_props;
  puback_props.packet_id = 9;
  puback_props.properties = props_if(v, C::kPuback);
  if (v5(v)) puback_props.reason_code = ReasonCode::kQuotaExceeded;
  out.push_back(puback_props);
  Pubrec pubrec_props;
  pubrec_props.packet_id = 10;
  pubrec_props.properties = props_if(v, C::kPubrec);
  out.push_back(pubrec_props);

  Subscribe sub;
  sub.packet_id = 7;
  sub.properties = props_if(v, C::kSubscribe);
  sub.subscriptions.push_back({"a/+/c", {QoS::k0, false, false, RetainHandling::kSendOnSubscribe}});
  sub.subscriptions.push_back({"#", {QoS::k1, false, false, RetainHandling::kSendOnSubscribe}});
  sub.subscriptions.push_back({"$share/group/x/#", {QoS::k2, false, false, RetainHandling::kSendOnSubscribe}});
  if (v5(v)) {
    sub.subscriptions.push_back({"nl/+", {QoS::k1, true, true, RetainHandling::kSendOnNewSubscribe}});
    sub.subscriptions.push_back({"rh/2", {QoS::k2, false, true, RetainHandling::kDoNotSend}});
  }
  out.push_back(sub);

  Suback suback;
  suback.packet_id = 7;
  suback.properties = props_if(v, C::kSuback);
  suback.reason_codes = {ReasonCode::kSuccess, ReasonCode::kGrantedQos1, ReasonCode::kGrantedQos2,
                         ReasonCode::kUnspecifiedError};
  if (v5(v)) suback.reason_codes.push_back(ReasonCode::kSharedSubscriptionsNotSupported);
  out.push_back(suback);

  Unsubscribe unsub;
  unsub.packet_id = 8;
  unsub.properties = props_if(v, C::kUnsubscribe);
  unsub.filters = {"a/+/c", "#", "$share/g/t"};
  out.push_back(unsub);

  Unsuback unsuback;
  unsuback.packet_id = 8;
  if (v5(v)) {
    unsuback.properties = full_properties(C::kUnsuback);
    unsuback.reason_codes = {ReasonCode::kSuccess, ReasonCode::kNoSubscriptionExisted, ReasonCode::kNotAuthorized};
  }
  out.push_back(unsuback);

  out.push_back(Pingreq{});
  out.push_back(Pingresp{});

  Disconnect with_reason;
  if (v5(v)) {
    with_reason.reason_code = ReasonCode::kSessionTakenOver;
    Disconnect with_props;
    with_props.reason_code = ReasonCode::kDisconnectWithWill;
    with_props.properties = full_properties(C::kDisconnect);
    out.push_back(with_props);
    out.push_back(with_reason);

    Auth auth;
    auth.reason_code = ReasonCode::kContinueAuthentication;
    auth.properties = full_properties(C::kAuth);
    out.push_back(auth);
    out.push_back(Auth{});
  }
  out.push_back(Disconnect{});
  return out;
}

}  // namespace starling::mqtt::test
