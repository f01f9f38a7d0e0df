#include "broker/mqtt/reason_code.h"

#include <algorithm>
#include <array>
#include <initializer_list>

namespace starling::mqtt {
namespace {

using R = ReasonCode;

bool in(R code, std::initializer_list<R> set) {
  return std::find(set.begin(), set.end(), code) != set.end();
}

}  // namespace

std::string_view packet_type_name(PacketType type) {
  static constexpr std::array<std::string_view, 16> kNames = {
      "RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
      "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"};
  auto i = static_cast<size_t>(type);
  return i < kNames.size() ? kNames[i] : "RESERVED";
}

std::string_view reason_name(ReasonCode code) {
  switch (code) {
    case R::kSuccess: return "Success";
    case R::kGrantedQos1: return "Granted QoS 1";
    case R::kGrantedQos2: return "Granted QoS 2";
    case R::kDisconnectWithWill: return "Disconnect with Will Message";
    case R::kNoMatchingSubscribers: return "No matching subscribers";
    case R::kNoSubscriptionExisted: return "No subscription existed";
    case R::kContinueAuthentication: return "Continue authentication";
    case R::kReauthenticate: return "Re-authenticate";
    case R::kUnspecifiedError: return "Unspecified error";
    case R::kMalformedPacket: return "Malformed Packet";
    case R::kProtocolError: return "Protocol Error";
    case R::kImplementationSpecificError: return "Implementation specific error";
    case R::kUnsupportedProtocolVersion: return "Unsupported Protocol Version";
    case R::kClientIdentifierNotValid: return "Client Identifier not valid";
    case R::kBadUserNameOrPassword: return "Bad User Name or Password";
    case R::kNotAuthorized: return "Not authorized";
    case R::kServerUnavailable: return "Server unavailable";
    case R::kServerBusy: return "Server busy";
    case R::kBanned: return "Banned";
    case R::kServerShuttingDown: return "Server shutting down";
    case R::kBadAuthenticationMethod: return "Bad authentication method";
    case R::kKeepAliveTimeout: return "Keep Alive timeout";
    case R::kSessionTakenOver: return "Session taken over";
    case R::kTopicFilterInvalid: return "Topic Filter invalid";
    case R::kTopicNameInvalid: return "Topic Name invalid";
    case R::kPacketIdentifierInUse: return "Packet Identifier in use";
    case R::kPacketIdentifierNotFound: return "Packet Identifier not found";
    case R::kReceiveMaximumExceeded: return "Receive Maximum exceeded";
    case R::kTopicAliasInvalid: return "Topic Alias invalid";
    case R::kPacketTooLarge: return "Packet too large";
    case R::kMessageRateTooHigh: return "Message rate too high";
    case R::kQuotaExceeded: return "Quota exceeded";
    case R::kAdministrativeAction: return "Administrative action";
    case R::kPayloadFormatInvalid: return "Payload format invalid";
    case R::kRetainNotSupported: return "Retain not supported";
    case R::kQosNotSupported: return "QoS not supported";
    case R::kUseAnotherServer: return "Use another server";
    case R::kServerMoved: return "Server moved";
    case R::kSharedSubscriptionsNotSupported: return "Shared Subscriptions not supported";
    case R::kConnectionRateExceeded: return "Connection rate exceeded";
    case R::kMaximumConnectTime: return "Maximum connect time";
    case R::kSubscriptionIdentifiersNotSupported: return "Subscription Identifiers not supported";
    case R::kWildcardSubscriptionsNotSupported: return "Wildcard Subscriptions not supported";
  }
  return "Unknown";
}

bool reason_allowed_in(ReasonCode code, PacketType type) {
  switch (type) {
    case PacketType::kConnack:
      return in(code, {R::kSuccess, R::kUnspecifiedError, R::kMalformedPacket, R::kProtocolError,
                       R::kImplementationSpecificError, R::kUnsupportedProtocolVersion,
                       R::kClientIdentifierNotValid, R::kBadUserNameOrPassword, R::kNotAuthorized,
                       R::kServerUnavailable, R::kServerBusy, R::kBanned, R::kBadAuthenticationMethod,
                       R::kTopicNameInvalid, R::kPacketTooLarge, R::kQuotaExceeded,
                       R::kPayloadFormatInvalid, R::kRetainNotSupported, R::kQosNotSupported,
                       R::kUseAnotherServer, R::kServerMoved, R::kConnectionRateExceeded});
    case PacketType::kPuback:
    case PacketType::kPubrec:
      return in(code, {R::kSuccess, R::kNoMatchingSubscribers, R::kUnspecifiedError,
                       R::kImplementationSpecificError, R::kNotAuthorized, R::kTopicNameInvalid,
                       R::kPacketIdentifierInUse, R::kQuotaExceeded, R::kPayloadFormatInvalid});
    case PacketType::kPubrel:
    case PacketType::kPubcomp:
      return in(code, {R::kSuccess, R::kPacketIdentifierNotFound});
    case PacketType::kSuback:
      return in(code, {R::kSuccess, R::kGrantedQos1, R::kGrantedQos2, R::kUnspecifiedError,
                       R::kImplementationSpecificError, R::kNotAuthorized, R::kTopicFilterInvalid,
                       R::kPacketIdentifierInUse, R::kQuotaExceeded,
                       R::kSharedSubscriptionsNotSupported, R::kSubscriptionIdentifiersNotSupported,
                       R::kWildcardSubscriptionsNotSupported});
    case PacketType::kUnsuback:
      return in(code, {R::kSuccess, R::kNoSubscriptionExisted, R::kUnspecifiedError,
                       R::kImplementationSpecificError, R::kNotAuthorized, R::kTopicFilterInvalid,
                       R::kPacketIdentifierInUse});
    case PacketType::kDisconnect:
      return in(code, {R::kSuccess, R::kDisconnectWithWill, R::kUnspecifiedError, R::kMalformedPacket,
                       R::kProtocolError, R::kImplementationSpecificError, R::kNotAuthorized,
                       R::kServerBusy, R::kServerShuttingDown, R::kKeepAliveTimeout,
                       R::kSessionTakenOver, R::kTopicFilterInvalid, R::kTopicNameInvalid,
                       R::kReceiveMaximumExceeded, R::kTopicAliasInvalid, R::kPacketTooLarge,
                       R::kMessageRateTooHigh, R::kQuotaExceeded, R::kAdministrativeAction,
                       R::kPayloadFormatInvalid, R::kRetainNotSupported, R::kQosNotSupported,
                       R::kUseAnotherServer, R::kServerMoved, R::kSharedSubscriptionsNotSupported,
                       R::kConnectionRateExceeded, R::kMaximumConnectTime,
                       R::kSubscriptionIdentifiersNotSupported, R::kWildcardSubscriptionsNotSupported});
    case PacketType::kAuth:
      return in(code, {R::kSuccess, R::kContinueAuthentication, R::kReauthenticate});
    default:
      return false;
  }
}

uint8_t connack_v3_return_code(ReasonCode code) {
  switch (code) {
    case R::kSuccess: return 0;
    case R::kUnsupportedProtocolVersion: return 1;
    case R::kClientIdentifierNotValid: return 2;
    case R::kBadUserNameOrPassword: return 4;
    case R::kNotAuthorized:
    case R::kBanned: return 5;
    default: return 3;  // server unavailable
  }
}

bool connack_from_v3_return_code(uint8_t rc, ReasonCode& out) {
  static constexpr std::array<R, 6> kCodes = {R::kSuccess, R::kUnsupportedProtocolVersion,
                                              R::kClientIdentifierNotValid, R::kServerUnavailable,
                                              R::kBadUserNameOrPassword, R::kNotAuthorized};
  if (rc >= kCodes.size()) return false;
  out = kCodes[rc];
  return true;
}

}  // namespace starling::mqtt
