// Byte-exact checks of the MQTT codec against hand-written encodings: the
// examples of the MQTT 3.1.1 and 5.0 specifications and packets computed by hand.
// Every case is checked both ways: encode(packet) == bytes, and decoding the
// bytes (with decode_packet and with a StreamDecoder fed a byte at a time) gives
// the packet back.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "broker/mqtt/decoder.h"
#include "broker/mqtt/encoder.h"
#include "broker/mqtt/packet.h"
#include "tests/support/mqtt_bytes.h"

using namespace starling::mqtt;
using namespace starling::mqtt::test;

namespace {

std::string hex_sv(std::string_view s) {
  return hex(ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

// ---- Printing packets for failure messages ---------------------------------

std::string describe(const Properties& p) {
  std::ostringstream o;
  auto u = [&](const char* name, const auto& opt) {
    if (opt) o << ' ' << name << '=' << static_cast<uint64_t>(*opt);
  };
  auto s = [&](const char* name, const std::optional<std::string_view>& opt) {
    if (opt) o << ' ' << name << "=[" << hex_sv(*opt) << ']';
  };
  u("payload_format", p.payload_format_indicator);
  u("message_expiry", p.message_expiry_interval);
  s("content_type", p.content_type);
  s("response_topic", p.response_topic);
  s("correlation_data", p.correlation_data);
  for (uint32_t id : p.subscription_identifiers) o << " sub_id=" << id;
  u("session_expiry", p.session_expiry_interval);
  s("assigned_client_id", p.assigned_client_identifier);
  u("server_keep_alive", p.server_keep_alive);
  s("auth_method", p.authentication_method);
  s("auth_data", p.authentication_data);
  u("request_problem_info", p.request_problem_information);
  u("will_delay", p.will_delay_interval);
  u("request_response_info", p.request_response_information);
  s("response_info", p.response_information);
  s("server_reference", p.server_reference);
  s("reason_string", p.reason_string);
  u("receive_maximum", p.receive_maximum);
  u("topic_alias_maximum", p.topic_alias_maximum);
  u("topic_alias", p.topic_alias);
  u("maximum_qos", p.maximum_qos);
  u("retain_available", p.retain_available);
  for (const UserProperty& up : p.user_properties) {
    o << " user=(" << hex_sv(up.name) << ")=(" << hex_sv(up.value) << ')';
  }
  u("maximum_packet_size", p.maximum_packet_size);
  u("wildcard_available", p.wildcard_subscription_available);
  u("sub_id_available", p.subscription_identifier_available);
  u("shared_available", p.shared_subscription_available);
  return "{" + o.str() + " }";
}

std::string describe(const Packet& packet) {
  std::ostringstream o;
  o << "type " << static_cast<int>(type_of(packet)) << ':';
  std::visit(
      [&](const auto& p) {
        using T = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<T, Connect>) {
          o << " version=" << static_cast<int>(p.version) << " client_id=[" << hex_sv(p.client_id)
            << "] clean_start=" << p.clean_start << " keep_alive=" << p.keep_alive;
          if (p.will) {
            o << " will{topic=[" << hex_sv(p.will->topic) << "] payload=[" << hex_sv(p.will->payload)
              << "] qos=" << static_cast<int>(p.will->qos) << " retain=" << p.will->retain
              << " props=" << describe(p.will->properties) << '}';
          }
          if (p.username) o << " username=[" << hex_sv(*p.username) << ']';
          if (p.password) o << " password=[" << hex_sv(*p.password) << ']';
          o << " props=" << describe(p.properties);
        } else if constexpr (std::is_same_v<T, Connack>) {
          o << " session_present=" << p.session_present
            << " rc=" << static_cast<int>(p.reason_code) << " props=" << describe(p.properties);
        } else if constexpr (std::is_same_v<T, Publish>) {
          o << " topic=[" << hex_sv(p.topic) << "] payload(" << p.payload.size() << ")"
            << " qos=" << static_cast<int>(p.qos) << " retain=" << p.retain << " dup=" << p.dup
            << " id=" << p.packet_id << " props=" << describe(p.properties);
        } else if constexpr (std::is_same_v<T, Puback> || std::is_same_v<T, Pubrec> ||
                             std::is_same_v<T, Pubrel> || std::is_same_v<T, Pubcomp>) {
          o << " id=" << p.packet_id << " rc=" << static_cast<int>(p.reason_code)
            << " props=" << describe(p.properties);
        } else if constexpr (std::is_same_v<T, Subscribe>) {
          o << " id=" << p.packet_id;
          for (const Subscription& s : p.subscriptions) {
            o << " [" << s.filter << " qos=" << static_cast<int>(s.options.qos)
              << " nl=" << s.options.no_local << " rap=" << s.options.retain_as_published
              << " rh=" << static_cast<int>(s.options.retain_handling) << ']';
          }
          o << " props=" << describe(p.properties);
        } else if constexpr (std::is_same_v<T, Suback> || std::is_same_v<T, Unsuback>) {
          o << " id=" << p.packet_id << " codes=";
          for (ReasonCode c : p.reason_codes) o << static_cast<int>(c) << ',';
          o << " props=" << describe(p.properties);
        } else if constexpr (std::is_same_v<T, Unsubscribe>) {
          o << " id=" << p.packet_id;
          for (std::string_view f : p.filters) o << " [" << f << ']';
          o << " props=" << describe(p.properties);
        } else if constexpr (std::is_same_v<T, Disconnect> || std::is_same_v<T, Auth>) {
          o << " rc=" << static_cast<int>(p.reason_code) << " props=" << describe(p.properties);
        }
      },
      packet);
  return o.str();
}

// ---- Framing the hand-written bytes ----------------------------------------

// Splits a whole packet written by hand into its first byte and its body, and
// checks that its Remaining Length matches the number of bytes written, so a
// miscounted test vector fails here rather than somewhere confusing.
struct Framed {
  uint8_t first = 0;
  ByteView body;
};

std::optional<Framed> frame(const Bytes& wire) {
  if (wire.size() < 2) return std::nullopt;
  uint32_t value = 0;
  size_t i = 1;
  for (int shift = 0; i < wire.size() && shift <= 21; shift += 7) {
    uint8_t b = wire[i++];
    value |= static_cast<uint32_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) {
      if (wire.size() - i != value) return std::nullopt;
      return Framed{wire[0], ByteView(wire).subspan(i)};
    }
  }
  return std::nullopt;
}

std::string code_of(const Error& e) {
  std::ostringstream o;
  o << "0x" << std::hex << static_cast<int>(e.code) << " (" << e.detail << ")";
  return o.str();
}

void ExpectEncodes(const Packet& packet, ProtocolVersion version, const Bytes& wire) {
  std::vector<uint8_t> out;
  Status s = encode(packet, version, out);
  ASSERT_TRUE(s.ok()) << "encode failed: " << code_of(s.error()) << " for " << describe(packet);
  EXPECT_EQ(hex(out), hex(wire)) << "encoding of " << describe(packet);
}

// Decodes `wire` with decode_packet and with a StreamDecoder fed `chunk` bytes at
// a time, and expects `expected` from both.
void ExpectDecodes(const Bytes& wire, ProtocolVersion version, const Packet& expected,
                   size_t chunk = 1) {
  std::optional<Framed> f = frame(wire);
  ASSERT_TRUE(f.has_value()) << "test vector's Remaining Length does not match: " << hex(wire);

  Result<Packet> r = decode_packet(f->first, f->body, version);
  ASSERT_TRUE(r.ok()) << "decode_packet failed: " << code_of(r.error()) << " on " << hex(wire);
  EXPECT_TRUE(r.value() == expected) << "decoded  " << describe(r.value()) << "\nexpected "
                                     << describe(expected);

  StreamDecoder d(kMaxPacketSize, version);
  std::optional<Decoded> got;
  for (size_t pos = 0; pos < wire.size(); pos += chunk) {
    size_t n = std::min(chunk, wire.size() - pos);
    d.feed(ByteView(wire).subspan(pos, n));
    auto next = d.next();
    ASSERT_TRUE(next.ok()) << "StreamDecoder failed: " << code_of(next.error()) << " after "
                           << pos + n << " bytes of " << hex(wire);
    if (pos + n < wire.size()) {
      ASSERT_FALSE(next.value().has_value()) << "packet returned before its last byte";
    } else {
      ASSERT_TRUE(next.value().has_value()) << "no packet after all bytes";
      got = std::move(next.value());
    }
  }
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->packet == expected) << "stream decoded " << describe(got->packet)
                                       << "\nexpected       " << describe(expected);
  auto after = d.next();
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after.value().has_value());
  EXPECT_EQ(d.buffered(), 0u);
}

void ExpectBytes(const Packet& packet, ProtocolVersion version, const Bytes& wire) {
  {
    SCOPED_TRACE("encode");
    ExpectEncodes(packet, version, wire);
  }
  {
    SCOPED_TRACE("decode");
    ExpectDecodes(wire, version, packet);
  }
}

constexpr ProtocolVersion kV31 = ProtocolVersion::kV31;
constexpr ProtocolVersion kV311 = ProtocolVersion::kV311;
constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;

// ============================================================================
// CONNECT
// ============================================================================

// MQTT 3.1.1 section 3.1.2.10, the variable header example: protocol name
// "MQTT", level 4, flags 0xCE (user name, password, will QoS 1, will flag, clean
// session), keep alive 10. The payload fields follow in the order of 3.1.3
// [MQTT-3.1.3-1]: client id, will topic, will message, user name, password.
TEST(SpecBytes, Connect311SpecExample) {
  Bytes wire = bytes({0x10, 0x1F,                                // CONNECT, remaining length 31
                      0x00, 0x04, 'M', 'Q', 'T', 'T',            // protocol name
                      0x04,                                      // protocol level 4
                      0xCE,                                      // connect flags
                      0x00, 0x0A,                                // keep alive 10
                      0x00, 0x02, 'c', '1',                      // client identifier
                      0x00, 0x03, 'w', '/', 't',                 // will topic
                      0x00, 0x03, 'b', 'y', 'e',                 // will message
                      0x00, 0x01, 'u',                           // user name
                      0x00, 0x02, 'p', 'w'});                    // password
  Connect c;
  c.version = kV311;
  c.client_id = "c1";
  c.clean_start = true;
  c.keep_alive = 10;
  c.will = Will{.topic = "w/t", .payload = "bye", .qos = QoS::k1, .retain = false, .properties = {}};
  c.username = "u";
  c.password = "pw";

  ExpectEncodes(c, kV311, wire);
  // A server decodes the first CONNECT before it knows the version.
  ExpectDecodes(wire, ProtocolVersion::kUnknown, c);
  ExpectDecodes(wire, kV311, c);
}

// MQTT 5.0 section 3.1.2.11, the variable header example: level 5, flags 0xCE,
// keep alive 10, properties length 5, Session Expiry Interval (0x11) = 10.
// The will properties come first in the will fields (3.1.3.2), here empty.
TEST(SpecBytes, Connect5SpecExampleWithSessionExpiry) {
  Bytes wire = bytes({0x10, 0x26,                                // CONNECT, remaining length 38
                      0x00, 0x04, 'M', 'Q', 'T', 'T',            // protocol name
                      0x05,                                      // protocol version 5
                      0xCE,                                      // connect flags
                      0x00, 0x0A,                                // keep alive 10
                      0x05,                                      // properties length 5
                      0x11, 0x00, 0x00, 0x00, 0x0A,              // session expiry interval 10
                      0x00, 0x02, 'c', '1',                      // client identifier
                      0x00,                                      // will properties length 0
                      0x00, 0x03, 'w', '/', 't',                 // will topic
                      0x00, 0x03, 'b', 'y', 'e',                 // will payload
                      0x00, 0x01, 'u',                           // user name
                      0x00, 0x02, 'p', 'w'});                    // password
  Connect c;
  c.version = kV5;
  c.client_id = "c1";
  c.clean_start = true;
  c.keep_alive = 10;
  c.will = Will{.topic = "w/t", .payload = "bye", .qos = QoS::k1, .retain = false, .properties = {}};
  c.username = "u";
  c.password = "pw";
  c.properties.session_expiry_interval = 10;

  ExpectEncodes(c, kV5, wire);
  ExpectDecodes(wire, ProtocolVersion::kUnknown, c);
  ExpectDecodes(wire, kV5, c);
}

// A v5 CONNECT with will properties and several connect properties, written in
// ascending identifier order; will retain and will QoS 2; no user name.
TEST(SpecBytes, Connect5WithWillPropertiesAndConnectProperties) {
  Bytes wire = bytes({0x10, 0x35,                                // remaining length 53
                      0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05,
                      0x34,                                      // will retain, will QoS 2, will flag, no clean start
                      0x00, 0x3C,                                // keep alive 60
                      0x12,                                      // properties length 18
                      0x21, 0x00, 0x14,                          // receive maximum 20
                      0x22, 0x00, 0x05,                          // topic alias maximum 5
                      0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v',    // user property k=v
                      0x27, 0x00, 0x00, 0x10, 0x00,              // maximum packet size 4096
                      0x00, 0x03, 'c', 'i', 'd',                 // client identifier
                      0x0B,                                      // will properties length 11
                      0x01, 0x01,                                // payload format indicator 1
                      0x03, 0x00, 0x01, 't',                     // content type "t"
                      0x18, 0x00, 0x00, 0x00, 0x1E,              // will delay interval 30
                      0x00, 0x01, 'w',                           // will topic
                      0x00, 0x02, 0xFF, 0x00});                  // will payload (binary)
  Connect c;
  c.version = kV5;
  c.client_id = "cid";
  c.clean_start = false;
  c.keep_alive = 60;
  Will w;
  w.topic = "w";
  w.payload = std::string_view("\xFF\x00", 2);
  w.qos = QoS::k2;
  w.retain = true;
  w.properties.payload_format_indicator = 1;
  w.properties.content_type = "t";
  w.properties.will_delay_interval = 30;
  c.will = w;
  c.properties.receive_maximum = 20;
  c.properties.topic_alias_maximum = 5;
  c.properties.user_properties = {UserProperty{"k", "v"}};
  c.properties.maximum_packet_size = 4096;

  ExpectEncodes(c, kV5, wire);
  ExpectDecodes(wire, ProtocolVersion::kUnknown, c);
}

// A minimal 3.1.1 CONNECT: no will, no user name, empty client identifier with
// clean session (allowed by [MQTT-3.1.3-7]).
TEST(SpecBytes, Connect311MinimalEmptyClientId) {
  Bytes wire = bytes({0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00,
                      0x00, 0x00});
  Connect c;
  c.version = kV311;
  c.client_id = "";
  c.clean_start = true;
  c.keep_alive = 0;
  ExpectEncodes(c, kV311, wire);
  ExpectDecodes(wire, ProtocolVersion::kUnknown, c);
}

// MQTT 3.1: protocol name "MQIsdp", protocol version 3.
TEST(SpecBytes, Connect31MQIsdpLevel3) {
  Bytes wire = bytes({0x10, 0x12,                                 // remaining length 18
                      0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p',   // protocol name
                      0x03,                                       // version 3
                      0x02,                                       // clean session
                      0x00, 0x3C,                                 // keep alive 60
                      0x00, 0x04, 'c', 'l', 'i', '1'});           // client identifier
  Connect c;
  c.version = kV31;
  c.client_id = "cli1";
  c.clean_start = true;
  c.keep_alive = 60;
  ExpectEncodes(c, kV31, wire);
  ExpectDecodes(wire, ProtocolVersion::kUnknown, c);
}

// The StreamDecoder learns the connection's version from the first CONNECT.
TEST(SpecBytes, StreamDecoderTakesVersionFromConnect) {
  struct Case {
    Bytes wire;
    ProtocolVersion version;
  };
  std::vector<Case> cases = {
      {bytes({0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x01,
              'c'}),
       kV311},
      {bytes({0x10, 0x0E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00, 0x00, 0x00, 0x00,
              0x01, 'c'}),
       kV5},
      {bytes({0x10, 0x0F, 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', 0x03, 0x02, 0x00, 0x00,
              0x00, 0x01, 'c'}),
       kV31},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(hex(c.wire));
    StreamDecoder d;
    EXPECT_EQ(d.version(), ProtocolVersion::kUnknown);
    d.feed(c.wire);
    auto next = d.next();
    ASSERT_TRUE(next.ok()) << code_of(next.error());
    ASSERT_TRUE(next.value().has_value());
    ASSERT_TRUE(std::holds_alternative<Connect>(next.value()->packet));
    EXPECT_EQ(std::get<Connect>(next.value()->packet).version, c.version);
    EXPECT_EQ(d.version(), c.version);
  }
}

// ============================================================================
// CONNACK
// ============================================================================

TEST(SpecBytes, Connack311Accepted) {
  ExpectBytes(Connack{}, kV311, bytes({0x20, 0x02, 0x00, 0x00}));
}

TEST(SpecBytes, Connack311SessionPresent) {
  Connack c;
  c.session_present = true;
  ExpectBytes(c, kV311, bytes({0x20, 0x02, 0x01, 0x00}));
}

// 3.1.1 return codes 1-5 (section 3.2.2.3) and the MQTT 5 codes of the same meaning.
TEST(SpecBytes, Connack311ReturnCodesMapToV5Codes) {
  struct Case {
    uint8_t v3;
    ReasonCode v5;
  };
  for (Case c : {Case{0x01, ReasonCode::kUnsupportedProtocolVersion},
                 Case{0x02, ReasonCode::kClientIdentifierNotValid},
                 Case{0x03, ReasonCode::kServerUnavailable},
                 Case{0x04, ReasonCode::kBadUserNameOrPassword},
                 Case{0x05, ReasonCode::kNotAuthorized}}) {
    SCOPED_TRACE(static_cast<int>(c.v3));
    Connack k;
    k.reason_code = c.v5;
    ExpectBytes(k, kV311, bytes({0x20, 0x02, 0x00, c.v3}));
  }
}

// A v5 code with no 3.1.1 equivalent is sent as 3, Server unavailable
// (reason_code.h). (Which codes have an equivalent is the codec's choice: the
// specification gives no mapping.)
TEST(SpecBytes, Connack311EncodesV5OnlyCodeAsServerUnavailable) {
  for (ReasonCode rc : {ReasonCode::kUnspecifiedError, ReasonCode::kImplementationSpecificError,
                        ReasonCode::kServerBusy, ReasonCode::kQuotaExceeded}) {
    SCOPED_TRACE(static_cast<int>(rc));
    Connack k;
    k.reason_code = rc;
    ExpectEncodes(k, kV311, bytes({0x20, 0x02, 0x00, 0x03}));
  }
}

// MQTT 5 CONNACK: flags, reason code, property length (always present).
TEST(SpecBytes, Connack5NoProperties) {
  ExpectBytes(Connack{}, kV5, bytes({0x20, 0x03, 0x00, 0x00, 0x00}));
}

TEST(SpecBytes, Connack5Refused) {
  Connack k;
  k.reason_code = ReasonCode::kNotAuthorized;
  ExpectBytes(k, kV5, bytes({0x20, 0x03, 0x00, 0x87, 0x00}));
}

TEST(SpecBytes, Connack5WithProperties) {
  Bytes wire = bytes({0x20, 0x0E,
                      0x01,                                // session present
                      0x00,                                // success
                      0x0B,                                // properties length 11
                      0x12, 0x00, 0x03, 'a', 'b', 'c',     // assigned client identifier
                      0x21, 0x00, 0x0A,                    // receive maximum 10
                      0x24, 0x01});                        // maximum QoS 1
  Connack k;
  k.session_present = true;
  k.properties.assigned_client_identifier = "abc";
  k.properties.receive_maximum = 10;
  k.properties.maximum_qos = 1;
  ExpectBytes(k, kV5, wire);
}

// ============================================================================
// PUBLISH
// ============================================================================

TEST(SpecBytes, Publish311QoS0) {
  Publish p{.topic = "a/b", .payload = "hi", .qos = QoS::k0, .retain = false, .dup = false,
            .packet_id = 0, .properties = {}};
  // No packet identifier at QoS 0 (3.3.2.2).
  ExpectBytes(p, kV311, bytes({0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'}));
}

TEST(SpecBytes, Publish311QoS0Retain) {
  Publish p{.topic = "a/b", .payload = "hi", .qos = QoS::k0, .retain = true, .dup = false,
            .packet_id = 0, .properties = {}};
  ExpectBytes(p, kV311, bytes({0x31, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'}));
}

TEST(SpecBytes, Publish311QoS1Retain) {
  Publish p{.topic = "a/b", .payload = "hi", .qos = QoS::k1, .retain = true, .dup = false,
            .packet_id = 10, .properties = {}};
  ExpectBytes(p, kV311, bytes({0x33, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'}));
}

TEST(SpecBytes, Publish311QoS1Dup) {
  Publish p{.topic = "a/b", .payload = "hi", .qos = QoS::k1, .retain = false, .dup = true,
            .packet_id = 0xFFFF, .properties = {}};
  ExpectBytes(p, kV311, bytes({0x3A, 0x09, 0x00, 0x03, 'a', '/', 'b', 0xFF, 0xFF, 'h', 'i'}));
}

TEST(SpecBytes, Publish311QoS2DupRetain) {
  Publish p{.topic = "a/b", .payload = "hi", .qos = QoS::k2, .retain = true, .dup = true,
            .packet_id = 0x1234, .properties = {}};
  ExpectBytes(p, kV311, bytes({0x3D, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x12, 0x34, 'h', 'i'}));
}

TEST(SpecBytes, Publish311EmptyPayload) {
  Publish p{.topic = "t", .payload = "", .qos = QoS::k0, .retain = true, .dup = false,
            .packet_id = 0, .properties = {}};
  ExpectBytes(p, kV311, bytes({0x31, 0x03, 0x00, 0x01, 't'}));
}

// The payload is binary: any bytes, NUL and invalid UTF-8 included.
TEST(SpecBytes, Publish311BinaryPayload) {
  Publish p{.topic = "t", .payload = std::string_view("\x00\xFF\xC0\x80", 4), .qos = QoS::k0,
            .retain = false, .dup = false, .packet_id = 0, .properties = {}};
  ExpectBytes(p, kV311, bytes({0x30, 0x07, 0x00, 0x01, 't', 0x00, 0xFF, 0xC0, 0x80}));
}

TEST(SpecBytes, Publish5QoS0NoProperties) {
  Publish p{.topic = "a/b", .payload = "hi", .qos = QoS::k0, .retain = false, .dup = false,
            .packet_id = 0, .properties = {}};
  ExpectBytes(p, kV5, bytes({0x30, 0x08, 0x00, 0x03, 'a', '/', 'b', 0x00, 'h', 'i'}));
}

TEST(SpecBytes, Publish5QoS2NoProperties) {
  Publish p{.topic = "a/b", .payload = "hi", .qos = QoS::k2, .retain = false, .dup = false,
            .packet_id = 7, .properties = {}};
  ExpectBytes(p, kV5,
              bytes({0x34, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x07, 0x00, 'h', 'i'}));
}

// v5 PUBLISH properties (3.3.2.3): Message Expiry Interval, Subscription
// Identifier as a Variable Byte Integer (200 = C8 01), Topic Alias, User Property.
TEST(SpecBytes, Publish5WithProperties) {
  Bytes wire = bytes({0x32, 0x19,                                // QoS 1, remaining length 25
                      0x00, 0x01, 't',                           // topic
                      0x00, 0x01,                                // packet identifier 1
                      0x12,                                      // properties length 18
                      0x02, 0x00, 0x00, 0x00, 0x3C,              // message expiry interval 60
                      0x0B, 0xC8, 0x01,                          // subscription identifier 200
                      0x23, 0x00, 0x05,                          // topic alias 5
                      0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v',    // user property k=v
                      'x'});                                     // payload
  Publish p;
  p.topic = "t";
  p.payload = "x";
  p.qos = QoS::k1;
  p.packet_id = 1;
  p.properties.message_expiry_interval = 60;
  p.properties.subscription_identifiers = {200};
  p.properties.topic_alias = 5;
  p.properties.user_properties = {UserProperty{"k", "v"}};
  ExpectBytes(p, kV5, wire);
}

// The remaining PUBLISH properties: payload format, content type, response
// topic, correlation data; and several subscription identifiers, one of them
// needing 4 bytes (268,435,455 = FF FF FF 7F), plus repeated user properties
// whose order is kept.
TEST(SpecBytes, Publish5RequestResponseProperties) {
  Bytes wire = bytes({0x30, 0x2D,                                // QoS 0, remaining length 45
                      0x00, 0x01, 't',
                      0x27,                                      // properties length 39
                      0x01, 0x01,                                // payload format indicator 1
                      0x03, 0x00, 0x04, 'j', 's', 'o', 'n',      // content type
                      0x08, 0x00, 0x03, 'r', '/', '1',           // response topic
                      0x09, 0x00, 0x02, 0x00, 0xFF,              // correlation data (binary)
                      0x0B, 0x01,                                // subscription identifier 1
                      0x0B, 0xFF, 0xFF, 0xFF, 0x7F,              // subscription identifier 268435455
                      0x26, 0x00, 0x01, 'b', 0x00, 0x00,         // user property b=""
                      0x26, 0x00, 0x01, 'a', 0x00, 0x00,         // user property a=""
                      '{', '}'});                                // payload
  Publish p;
  p.topic = "t";
  p.payload = "{}";
  p.properties.payload_format_indicator = 1;
  p.properties.content_type = "json";
  p.properties.response_topic = "r/1";
  p.properties.correlation_data = std::string_view("\x00\xFF", 2);
  p.properties.subscription_identifiers = {1, 268'435'455};
  p.properties.user_properties = {UserProperty{"b", ""}, UserProperty{"a", ""}};
  ExpectBytes(p, kV5, wire);
}

// Properties may come in any order; the decoder does not depend on it.
TEST(SpecBytes, Publish5PropertiesInDescendingOrderDecode) {
  Bytes wire = bytes({0x30, 0x0E, 0x00, 0x01, 't',
                      0x08,                                      // properties length 8
                      0x23, 0x00, 0x05,                          // topic alias 5
                      0x02, 0x00, 0x00, 0x00, 0x3C,              // message expiry interval 60
                      'x', 'y'});
  Publish p;
  p.topic = "t";
  p.payload = "xy";
  p.properties.message_expiry_interval = 60;
  p.properties.topic_alias = 5;
  ExpectDecodes(wire, kV5, p);
}

// An empty topic name stands for the topic its Topic Alias maps to (3.3.2.3.4).
TEST(SpecBytes, Publish5EmptyTopicWithTopicAlias) {
  Publish p;
  p.topic = "";
  p.payload = "x";
  p.properties.topic_alias = 3;
  ExpectBytes(p, kV5, bytes({0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x03, 'x'}));
}

// For a 3.1.1 connection the MQTT 5 properties are left out (encoder.h).
TEST(SpecBytes, Publish311EncodingDropsProperties) {
  Publish p;
  p.topic = "a/b";
  p.payload = "hi";
  p.qos = QoS::k1;
  p.packet_id = 10;
  p.properties.message_expiry_interval = 60;
  p.properties.user_properties = {UserProperty{"k", "v"}};
  ExpectEncodes(p, kV311, bytes({0x32, 0x09, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x0A, 'h', 'i'}));
}

// ---- Variable Byte Integer boundaries (1.5.5, table 1-1) through PUBLISH ----

// A QoS 0 PUBLISH to topic "a" has 3 bytes before the payload, so a payload of
// n - 3 bytes makes the remaining length n.
void CheckRemainingLength(uint32_t remaining, const Bytes& length_bytes) {
  SCOPED_TRACE("remaining length " + std::to_string(remaining));
  std::string payload(remaining - 3, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  Bytes wire = cat({bytes({0x30}), length_bytes, bytes({0x00, 0x01, 'a'}), raw(payload)});
  ASSERT_EQ(wire.size(), 1 + length_bytes.size() + remaining);

  Publish p;
  p.topic = "a";
  p.payload = payload;
  ExpectEncodes(p, kV311, wire);
  ExpectDecodes(wire, kV311, p, /*chunk=*/4096);
  // The header alone, split over several feeds, is not a packet yet.
  StreamDecoder d(kMaxPacketSize, kV311);
  for (size_t i = 0; i < 1 + length_bytes.size(); ++i) {
    d.feed(ByteView(wire).subspan(i, 1));
    auto next = d.next();
    ASSERT_TRUE(next.ok()) << code_of(next.error());
    EXPECT_FALSE(next.value().has_value());
  }
}

TEST(SpecBytes, RemainingLength127IsOneByte) { CheckRemainingLength(127, bytes({0x7F})); }

TEST(SpecBytes, RemainingLength128IsTwoBytes) { CheckRemainingLength(128, bytes({0x80, 0x01})); }

TEST(SpecBytes, RemainingLength16383IsTwoBytes) {
  CheckRemainingLength(16383, bytes({0xFF, 0x7F}));
}

TEST(SpecBytes, RemainingLength16384IsThreeBytes) {
  CheckRemainingLength(16384, bytes({0x80, 0x80, 0x01}));
}

TEST(SpecBytes, RemainingLength2097151IsThreeBytes) {
  CheckRemainingLength(2'097'151, bytes({0xFF, 0xFF, 0x7F}));
}

TEST(SpecBytes, RemainingLength2097152IsFourBytes) {
  CheckRemainingLength(2'097'152, bytes({0x80, 0x80, 0x80, 0x01}));
}

// Remaining length 0 (a PUBLISH can't have it: its topic takes 2 bytes at least).
TEST(SpecBytes, RemainingLength0IsOneByte) {
  ExpectBytes(Pingreq{}, kV311, bytes({0xC0, 0x00}));
}

// The largest remaining length, 268,435,455 = FF FF FF 7F, is a valid header:
// the decoder waits for the body.
TEST(SpecBytes, RemainingLengthMaximumHeaderIsAccepted) {
  StreamDecoder d(kMaxPacketSize, kV311);
  d.feed(bytes({0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01, 'a'}));
  auto next = d.next();
  ASSERT_TRUE(next.ok()) << code_of(next.error());
  EXPECT_FALSE(next.value().has_value());
}

// ============================================================================
// PUBACK, PUBREC, PUBREL, PUBCOMP
// ============================================================================

// 3.1.1 PUBACK: the packet identifier and nothing else, remaining length 2.
TEST(SpecBytes, Puback311IsTwoByteBody) {
  ExpectBytes(Puback{.packet_id = 10, .reason_code = ReasonCode::kSuccess, .properties = {}},
              kV311, bytes({0x40, 0x02, 0x00, 0x0A}));
}

// The reason code of an acknowledgement is left out for 3.1.1 (encoder.h).
TEST(SpecBytes, Puback311EncodingDropsReasonCode) {
  Puback a{.packet_id = 10, .reason_code = ReasonCode::kNoMatchingSubscribers, .properties = {}};
  ExpectEncodes(a, kV311, bytes({0x40, 0x02, 0x00, 0x0A}));
}

// v5 PUBACK with a reason code and no properties: the property length is left
// out, remaining length 3 (3.4.2.2.1: "If the Remaining Length is less than 4
// there is no Property Length and the value of 0 is used").
TEST(SpecBytes, Puback5ReasonCodeWithoutPropertiesIsThreeByteBody) {
  Puback a{.packet_id = 10, .reason_code = ReasonCode::kNoMatchingSubscribers, .properties = {}};
  ExpectBytes(a, kV5, bytes({0x40, 0x03, 0x00, 0x0A, 0x10}));
}

// v5 PUBACK bodies of 2, 3 and 4 bytes all decode (3.4.2.1: with remaining
// length 2 the reason code is 0x00).
TEST(SpecBytes, Puback5DecodesBodyLengths2To4) {
  Puback success{.packet_id = 10, .reason_code = ReasonCode::kSuccess, .properties = {}};
  Puback nomatch{.packet_id = 10, .reason_code = ReasonCode::kNoMatchingSubscribers,
                 .properties = {}};
  ExpectDecodes(bytes({0x40, 0x02, 0x00, 0x0A}), kV5, success);
  ExpectDecodes(bytes({0x40, 0x03, 0x00, 0x0A, 0x00}), kV5, success);
  ExpectDecodes(bytes({0x40, 0x03, 0x00, 0x0A, 0x10}), kV5, nomatch);
  ExpectDecodes(bytes({0x40, 0x04, 0x00, 0x0A, 0x00, 0x00}), kV5, success);
  ExpectDecodes(bytes({0x40, 0x04, 0x00, 0x0A, 0x10, 0x00}), kV5, nomatch);
}

// Success with no properties may be written in 2, 3 or 4 bytes; whichever the
// encoder picks must decode back to the same packet.
TEST(SpecBytes, Puback5SuccessEncodingRoundTrips) {
  Puback a{.packet_id = 10, .reason_code = ReasonCode::kSuccess, .properties = {}};
  std::vector<uint8_t> out;
  ASSERT_TRUE(encode(a, kV5, out).ok());
  ASSERT_GE(out.size(), 4u);
  EXPECT_EQ(out[0], 0x40);
  EXPECT_TRUE(out[1] >= 2 && out[1] <= 4) << hex(out);
  ExpectDecodes(out, kV5, a);
}

TEST(SpecBytes, Pubrec5WithReasonString) {
  Pubrec r{.packet_id = 10, .reason_code = ReasonCode::kUnspecifiedError, .properties = {}};
  r.properties.reason_string = "no";
  ExpectBytes(r, kV5, bytes({0x50, 0x09, 0x00, 0x0A, 0x80, 0x05, 0x1F, 0x00, 0x02, 'n', 'o'}));
}

TEST(SpecBytes, Pubrec311) {
  ExpectBytes(Pubrec{.packet_id = 0x0102, .reason_code = ReasonCode::kSuccess, .properties = {}},
              kV311, bytes({0x50, 0x02, 0x01, 0x02}));
}

// PUBREL's fixed header is 0x62: flags 0010 [MQTT-3.6.1-1].
TEST(SpecBytes, Pubrel311FixedHeaderIs62) {
  ExpectBytes(Pubrel{.packet_id = 10, .reason_code = ReasonCode::kSuccess, .properties = {}},
              kV311, bytes({0x62, 0x02, 0x00, 0x0A}));
}

TEST(SpecBytes, Pubrel5PacketIdentifierNotFound) {
  Pubrel r{.packet_id = 10, .reason_code = ReasonCode::kPacketIdentifierNotFound,
           .properties = {}};
  ExpectBytes(r, kV5, bytes({0x62, 0x03, 0x00, 0x0A, 0x92}));
}

TEST(SpecBytes, Pubcomp311) {
  ExpectBytes(Pubcomp{.packet_id = 10, .reason_code = ReasonCode::kSuccess, .properties = {}},
              kV311, bytes({0x70, 0x02, 0x00, 0x0A}));
}

// ============================================================================
// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK
// ============================================================================

// SUBSCRIBE's fixed header is 0x82: flags 0010 [MQTT-3.8.1-1]. In 3.1.1 the
// byte after each filter is the requested QoS.
TEST(SpecBytes, Subscribe311TwoFilters) {
  Subscribe s;
  s.packet_id = 1;
  s.subscriptions = {Subscription{"a/b", SubscriptionOptions{.qos = QoS::k1}},
                     Subscription{"c/#", SubscriptionOptions{.qos = QoS::k2}}};
  ExpectBytes(s, kV311,
              bytes({0x82, 0x0E, 0x00, 0x01, 0x00, 0x03, 'a', '/', 'b', 0x01, 0x00, 0x03, 'c',
                     '/', '#', 0x02}));
}

// v5 subscription options (3.8.3.1): bits 0-1 QoS, bit 2 No Local, bit 3 Retain
// As Published, bits 4-5 Retain Handling. 0x2D = QoS 1 | NL | RAP | RH 2.
TEST(SpecBytes, Subscribe5OptionsByteAndSubscriptionIdentifier) {
  Subscribe s;
  s.packet_id = 1;
  s.properties.subscription_identifiers = {7};
  s.subscriptions = {
      Subscription{"a/b", SubscriptionOptions{.qos = QoS::k1,
                                              .no_local = true,
                                              .retain_as_published = true,
                                              .retain_handling = RetainHandling::kDoNotSend}},
      Subscription{"c", SubscriptionOptions{.qos = QoS::k0,
                                            .no_local = false,
                                            .retain_as_published = false,
                                            .retain_handling =
                                                RetainHandling::kSendOnNewSubscribe}}};
  ExpectBytes(s, kV5,
              bytes({0x82, 0x0F,
                     0x00, 0x01,                         // packet identifier
                     0x02, 0x0B, 0x07,                   // properties: subscription identifier 7
                     0x00, 0x03, 'a', '/', 'b', 0x2D,    // filter, options
                     0x00, 0x01, 'c', 0x10}));
}

// Each option bit decodes to its own field.
TEST(SpecBytes, Subscribe5EachOptionBit) {
  Subscribe s;
  s.packet_id = 0x0203;
  s.subscriptions = {
      Subscription{"q", SubscriptionOptions{.qos = QoS::k2}},
      Subscription{"n", SubscriptionOptions{.qos = QoS::k0, .no_local = true}},
      Subscription{"r", SubscriptionOptions{.qos = QoS::k0, .no_local = false,
                                            .retain_as_published = true}},
      Subscription{"h", SubscriptionOptions{.qos = QoS::k0, .no_local = false,
                                            .retain_as_published = false,
                                            .retain_handling = RetainHandling::kDoNotSend}},
  };
  ExpectBytes(s, kV5,
              bytes({0x82, 0x13, 0x02, 0x03, 0x00,
                     0x00, 0x01, 'q', 0x02,
                     0x00, 0x01, 'n', 0x04,
                     0x00, 0x01, 'r', 0x08,
                     0x00, 0x01, 'h', 0x20}));
}

// A shared subscription filter is carried as it is.
TEST(SpecBytes, Subscribe5SharedFilter) {
  Subscribe s;
  s.packet_id = 5;
  s.subscriptions = {Subscription{"$share/g/a/+", SubscriptionOptions{.qos = QoS::k1}}};
  ExpectBytes(s, kV5,
              bytes({0x82, 0x12, 0x00, 0x05, 0x00, 0x00, 0x0C, '$', 's', 'h', 'a', 'r', 'e', '/',
                     'g', '/', 'a', '/', '+', 0x01}));
}

// 3.1.1 SUBACK return codes 0x00, 0x01, 0x02 and 0x80 (failure) [MQTT-3.9.3-2].
TEST(SpecBytes, Suback311WithFailure80) {
  Suback s;
  s.packet_id = 1;
  s.reason_codes = {ReasonCode::kSuccess, ReasonCode::kGrantedQos2, ReasonCode::kUnspecifiedError};
  ExpectBytes(s, kV311, bytes({0x90, 0x05, 0x00, 0x01, 0x00, 0x02, 0x80}));
}

// Every MQTT 5 failure code becomes 0x80 for a 3.1.1 client (encoder.h).
TEST(SpecBytes, Suback311EncodingMapsFailuresTo80) {
  Suback s;
  s.packet_id = 1;
  s.reason_codes = {ReasonCode::kGrantedQos1, ReasonCode::kNotAuthorized,
                    ReasonCode::kTopicFilterInvalid};
  ExpectEncodes(s, kV311, bytes({0x90, 0x05, 0x00, 0x01, 0x01, 0x80, 0x80}));
}

TEST(SpecBytes, Suback5ReasonCodes) {
  Suback s;
  s.packet_id = 1;
  s.reason_codes = {ReasonCode::kGrantedQos1, ReasonCode::kNotAuthorized};
  ExpectBytes(s, kV5, bytes({0x90, 0x05, 0x00, 0x01, 0x00, 0x01, 0x87}));
}

// UNSUBSCRIBE's fixed header is 0xA2: flags 0010 [MQTT-3.10.1-1].
TEST(SpecBytes, Unsubscribe311) {
  Unsubscribe u;
  u.packet_id = 2;
  u.filters = {"a/b", "c"};
  ExpectBytes(u, kV311,
              bytes({0xA2, 0x0A, 0x00, 0x02, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x01, 'c'}));
}

TEST(SpecBytes, Unsubscribe5) {
  Unsubscribe u;
  u.packet_id = 2;
  u.filters = {"a/b", "c"};
  ExpectBytes(u, kV5,
              bytes({0xA2, 0x0B, 0x00, 0x02, 0x00, 0x00, 0x03, 'a', '/', 'b', 0x00, 0x01, 'c'}));
}

// 3.1.1 UNSUBACK: the packet identifier only, remaining length 2 (3.11.1).
TEST(SpecBytes, Unsuback311IsTwoByteBody) {
  Unsuback u;
  u.packet_id = 2;
  ExpectBytes(u, kV311, bytes({0xB0, 0x02, 0x00, 0x02}));
}

// Reason codes are MQTT 5 only and left out for 3.1.1.
TEST(SpecBytes, Unsuback311EncodingDropsReasonCodes) {
  Unsuback u;
  u.packet_id = 2;
  u.reason_codes = {ReasonCode::kSuccess, ReasonCode::kNoSubscriptionExisted};
  ExpectEncodes(u, kV311, bytes({0xB0, 0x02, 0x00, 0x02}));
}

TEST(SpecBytes, Unsuback5ReasonCodes) {
  Unsuback u;
  u.packet_id = 2;
  u.reason_codes = {ReasonCode::kSuccess, ReasonCode::kNoSubscriptionExisted};
  ExpectBytes(u, kV5, bytes({0xB0, 0x05, 0x00, 0x02, 0x00, 0x00, 0x11}));
}

// ============================================================================
// PINGREQ, PINGRESP, DISCONNECT, AUTH
// ============================================================================

TEST(SpecBytes, PingreqIsC000) {
  ExpectBytes(Pingreq{}, kV311, bytes({0xC0, 0x00}));
  ExpectBytes(Pingreq{}, kV5, bytes({0xC0, 0x00}));
}

TEST(SpecBytes, PingrespIsD000) {
  ExpectBytes(Pingresp{}, kV311, bytes({0xD0, 0x00}));
  ExpectBytes(Pingresp{}, kV5, bytes({0xD0, 0x00}));
}

TEST(SpecBytes, Disconnect311IsE000) { ExpectBytes(Disconnect{}, kV311, bytes({0xE0, 0x00})); }

// v5: remaining length 0 means reason 0x00 Normal disconnection and no
// properties (3.14.2.1).
TEST(SpecBytes, Disconnect5EmptyBodyIsNormalDisconnection) {
  ExpectBytes(Disconnect{}, kV5, bytes({0xE0, 0x00}));
  // Written out in full it is the same packet.
  ExpectDecodes(bytes({0xE0, 0x01, 0x00}), kV5, Disconnect{});
  ExpectDecodes(bytes({0xE0, 0x02, 0x00, 0x00}), kV5, Disconnect{});
}

// A reason code and no properties: the property length may be left out
// (3.14.2.2.1: "If the Remaining Length is less than 2, a value of 0 is used").
TEST(SpecBytes, Disconnect5SessionTakenOver) {
  Disconnect d{.reason_code = ReasonCode::kSessionTakenOver, .properties = {}};
  ExpectBytes(d, kV5, bytes({0xE0, 0x01, 0x8E}));
  ExpectDecodes(bytes({0xE0, 0x02, 0x8E, 0x00}), kV5, d);
}

TEST(SpecBytes, Disconnect5WithProperties) {
  Disconnect d{.reason_code = ReasonCode::kServerMoved, .properties = {}};
  d.properties.session_expiry_interval = 0;
  d.properties.server_reference = "s2";
  ExpectBytes(d, kV5,
              bytes({0xE0, 0x0C, 0x9D, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x1C, 0x00, 0x02, 's',
                     '2'}));
}

// For 3.1.1 the DISCONNECT reason is left out (encoder.h).
TEST(SpecBytes, Disconnect311EncodingDropsReason) {
  Disconnect d{.reason_code = ReasonCode::kSessionTakenOver, .properties = {}};
  ExpectEncodes(d, kV311, bytes({0xE0, 0x00}));
}

// AUTH with remaining length 0 is Success with no properties (3.15.2.1).
TEST(SpecBytes, Auth5EmptyIsF000) { ExpectBytes(Auth{}, kV5, bytes({0xF0, 0x00})); }

TEST(SpecBytes, Auth5ContinueWithMethodAndData) {
  Auth a{.reason_code = ReasonCode::kContinueAuthentication, .properties = {}};
  a.properties.authentication_method = "SCRAM";
  a.properties.authentication_data = std::string_view("\x01\x02", 2);
  ExpectBytes(a, kV5,
              bytes({0xF0, 0x0F,
                     0x18,                                       // continue authentication
                     0x0D,                                       // properties length 13
                     0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M',  // authentication method
                     0x16, 0x00, 0x02, 0x01, 0x02}));            // authentication data
}

TEST(SpecBytes, Auth5ContinueWithMethodOnly) {
  Auth a{.reason_code = ReasonCode::kContinueAuthentication, .properties = {}};
  a.properties.authentication_method = "SCRAM";
  ExpectBytes(a, kV5,
              bytes({0xF0, 0x0A, 0x18, 0x08, 0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M'}));
}

// ============================================================================
// The stream
// ============================================================================

// Two packets in one read come out one after the other; then more bytes are
// needed.
TEST(SpecBytes, StreamDecoderTwoPacketsInOneRead) {
  StreamDecoder d(kMaxPacketSize, kV311);
  d.feed(bytes({0x40, 0x02, 0x00, 0x0A, 0xC0, 0x00, 0x30}));
  auto a = d.next();
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a.value().has_value());
  EXPECT_TRUE(a.value()->packet ==
              Packet(Puback{.packet_id = 10, .reason_code = ReasonCode::kSuccess,
                            .properties = {}}));
  auto b = d.next();
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(b.value().has_value());
  EXPECT_TRUE(std::holds_alternative<Pingreq>(b.value()->packet));
  auto c = d.next();
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c.value().has_value());
  EXPECT_EQ(d.buffered(), 1u);  // the first byte of the next packet
}

// prepare/commit: reading straight into the decoder's buffer.
TEST(SpecBytes, StreamDecoderPrepareCommit) {
  Bytes wire = bytes({0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'});
  StreamDecoder d(kMaxPacketSize, kV311);
  std::span<uint8_t> space = d.prepare(4);
  ASSERT_GE(space.size(), 4u);
  std::copy(wire.begin(), wire.begin() + 4, space.begin());
  d.commit(4);
  auto first = d.next();
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first.value().has_value());
  space = d.prepare(wire.size() - 4);
  ASSERT_GE(space.size(), wire.size() - 4);
  std::copy(wire.begin() + 4, wire.end(), space.begin());
  d.commit(wire.size() - 4);
  auto second = d.next();
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(second.value().has_value());
  ASSERT_TRUE(std::holds_alternative<Publish>(second.value()->packet));
  const Publish& p = std::get<Publish>(second.value()->packet);
  EXPECT_EQ(p.topic, "a/b");
  EXPECT_EQ(p.payload, "hi");
}

// The decoded packet's views stay valid after the decoder moves on and is
// destroyed, as long as `backing` is kept.
TEST(SpecBytes, StreamDecoderBackingOutlivesDecoder) {
  std::optional<Decoded> kept;
  {
    StreamDecoder d(kMaxPacketSize, kV311);
    d.feed(bytes({0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i'}));
    auto r = d.next();
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE(r.value().has_value());
    kept = std::move(r.value());
    d.feed(bytes({0x30, 0x07, 0x00, 0x03, 'x', '/', 'y', 'z', 'z'}));
    auto again = d.next();
    ASSERT_TRUE(again.ok());
    d.release_if_empty();
  }
  ASSERT_TRUE(std::holds_alternative<Publish>(kept->packet));
  const Publish& p = std::get<Publish>(kept->packet);
  EXPECT_EQ(p.topic, "a/b");
  EXPECT_EQ(p.payload, "hi");
}

}  // namespace
