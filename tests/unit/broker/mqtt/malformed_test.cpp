// The decoder refuses malformed packets, and each refusal carries the reason code
// the MQTT 5 specification gives it: 0x81 Malformed Packet for what cannot be
// parsed (spec 1.2, "Malformed Packet"), 0x82 Protocol Error for data the
// protocol does not allow once parsed, and the specific codes where the
// specification names one.
//
// Where the specification states a requirement but names no reason code for its
// breach (DUP on QoS 0, packet identifier 0, wildcards in a topic name, ...),
// Starling answers 0x81, as Mosquitto does, and the tests pin that choice.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "broker/mqtt/decoder.h"
#include "broker/mqtt/encoder.h"
#include "broker/mqtt/packet.h"
#include "tests/support/mqtt_bytes.h"

using namespace starling::mqtt;
using namespace starling::mqtt::test;

namespace {

// A v5 property block: its length, then the properties.
Bytes props(const Bytes& content) { return cat({vbi(static_cast<uint32_t>(content.size())), content}); }

constexpr ProtocolVersion kV31 = ProtocolVersion::kV31;
constexpr ProtocolVersion kV311 = ProtocolVersion::kV311;
constexpr ProtocolVersion kV5 = ProtocolVersion::kV5;
constexpr ProtocolVersion kUnknown = ProtocolVersion::kUnknown;

constexpr ReasonCode kMalformed = ReasonCode::kMalformedPacket;
constexpr ReasonCode kProtocol = ReasonCode::kProtocolError;

// The body of a CONNECT with keep alive 60. `props_content` is ignored for 3.1.1.
Bytes connect311(uint8_t flags, const Bytes& payload) {
  return cat({str("MQTT"), bytes({0x04, flags, 0x00, 0x3C}), payload});
}
Bytes connect5(uint8_t flags, const Bytes& props_content, const Bytes& payload) {
  return cat({str("MQTT"), bytes({0x05, flags, 0x00, 0x3C}), props(props_content), payload});
}
Bytes connect_for(ProtocolVersion v, uint8_t flags, const Bytes& payload) {
  return v == kV5 ? connect5(flags, {}, payload) : connect311(flags, payload);
}

// PUBLISH body: topic, packet identifier (QoS > 0), v5 properties, payload.
Bytes publish_body(ProtocolVersion v, const Bytes& topic_field, const Bytes& pid,
                   const Bytes& props_content, std::string_view payload) {
  if (v == kV5) return cat({topic_field, pid, props(props_content), raw(payload)});
  return cat({topic_field, pid, raw(payload)});
}

// SUBSCRIBE / UNSUBSCRIBE body: packet identifier, v5 properties, payload.
Bytes sub_body(ProtocolVersion v, uint16_t pid, const Bytes& props_content, const Bytes& payload) {
  Bytes id{static_cast<uint8_t>(pid >> 8), static_cast<uint8_t>(pid & 0xFF)};
  if (v == kV5) return cat({id, props(props_content), payload});
  return cat({id, payload});
}

const char* version_name(ProtocolVersion v) {
  switch (v) {
    case kV31: return "3.1";
    case kV311: return "3.1.1";
    case kV5: return "5.0";
    default: return "unknown";
  }
}

// ---- Assertions -------------------------------------------------------------

std::string code_hex(ReasonCode c) {
  std::ostringstream o;
  o << "0x" << std::hex << static_cast<int>(c);
  return o.str();
}

// The decoder refused the input with exactly `code`.
template <class T>
testing::AssertionResult FailsWith(const Result<T>& r, ReasonCode code) {
  if (r.ok()) return testing::AssertionFailure() << "accepted; expected an error";
  if (r.error().code == code) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "error " << code_hex(r.error().code) << " (" << r.error().detail
                                     << "), expected " << code_hex(code);
}

template <class T>
testing::AssertionResult Accepted(const Result<T>& r) {
  if (r.ok()) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "refused with " << code_hex(r.error().code) << " ("
                                     << r.error().detail << ")";
}

// Keeps the body alive with the result, so an accepted packet's views are valid.
struct Decode {
  Bytes body;
  Result<Packet> result;
  Decode(uint8_t first, Bytes b, ProtocolVersion v)
      : body(std::move(b)), result(decode_packet(first, ByteView(body), v)) {}
};

Result<Packet> decode(uint8_t first, const Bytes& body, ProtocolVersion v) {
  return decode_packet(first, ByteView(body), v);
}

// Feeds whole bytes to a fresh StreamDecoder and returns its first answer.
Result<std::optional<Decoded>> stream_decode(const Bytes& w, ProtocolVersion v,
                                             uint32_t max = kMaxPacketSize) {
  StreamDecoder d(max, v);
  d.feed(w);
  return d.next();
}

const std::vector<ProtocolVersion> kBothVersions = {kV311, kV5};

// ============================================================================
// Fixed header and Variable Byte Integers
// ============================================================================

// At most four bytes in a Variable Byte Integer (1.5.5).
TEST(Malformed, RemainingLengthOfFiveBytes) {
  for (ProtocolVersion v : kBothVersions) {
    SCOPED_TRACE(version_name(v));
    StreamDecoder d(kMaxPacketSize, v);
    d.feed(bytes({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
    EXPECT_TRUE(FailsWith(d.next(), kMalformed));
  }
}

// A property length (a Variable Byte Integer) of five bytes.
TEST(Malformed, PropertyLengthOfFiveBytes) {
  EXPECT_TRUE(FailsWith(decode(0x40, bytes({0x00, 0x01, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}), kV5),
                        kMalformed));
  // A Subscription Identifier of five bytes.
  EXPECT_TRUE(FailsWith(
      decode(0x30, publish_body(kV5, str("t"), {}, bytes({0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}), "x"),
             kV5),
      kMalformed));
}

// "The encoded value MUST use the minimum number of bytes necessary to represent
// the value" [MQTT-1.5.5-1]: 0x80 0x00 is 0 written in two bytes.
TEST(Malformed, NonMinimalRemainingLength) {
  for (ProtocolVersion v : kBothVersions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_TRUE(FailsWith(stream_decode(bytes({0xC0, 0x80, 0x00}), v), kMalformed));
    // The length of an otherwise valid QoS 0 PUBLISH body (3 or 4) in two bytes.
    Bytes body = publish_body(v, str("a"), {}, {}, "");
    ASSERT_TRUE(Accepted(stream_decode(wire(0x30, body), v)));
    Bytes w = cat({bytes({0x30, static_cast<uint8_t>(0x80 | body.size()), 0x00}), body});
    EXPECT_TRUE(FailsWith(stream_decode(w, v), kMalformed)) << hex(w);
  }
}

TEST(Malformed, NonMinimalVariableByteIntegerInProperties) {
  // Property length 0 written as 0x80 0x00.
  EXPECT_TRUE(FailsWith(decode(0x30, cat({str("t"), bytes({0x80, 0x00}), raw("x")}), kV5),
                        kMalformed));
  // Subscription Identifier 1 written as 0x81 0x00.
  EXPECT_TRUE(FailsWith(
      decode(0x30, publish_body(kV5, str("t"), {}, bytes({0x0B, 0x81, 0x00}), "x"), kV5),
      kMalformed));
}

// The remaining length ends before the fields the packet needs.
TEST(Malformed, TruncatedFields) {
  // PUBACK with one byte of packet identifier.
  EXPECT_TRUE(FailsWith(decode(0x40, bytes({0x00}), kV311), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x40, bytes({0x00}), kV5), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x62, bytes({}), kV311), kMalformed));
  // QoS 1 PUBLISH with no packet identifier.
  EXPECT_TRUE(FailsWith(decode(0x32, str("a"), kV311), kMalformed));
  // A topic length beyond the body.
  EXPECT_TRUE(FailsWith(decode(0x30, bytes({0x00, 0x05, 'a'}), kV311), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x30, bytes({0x00}), kV311), kMalformed));
  // v5 PUBLISH without its property length.
  EXPECT_TRUE(FailsWith(decode(0x30, str("a"), kV5), kMalformed));
  // CONNACK of one byte.
  EXPECT_TRUE(FailsWith(decode(0x20, bytes({0x00}), kV311), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x20, bytes({0x00, 0x00}), kV5), kMalformed));
  // CONNECT cut in its keep alive.
  EXPECT_TRUE(FailsWith(decode(0x10, cat({str("MQTT"), bytes({0x04, 0x02, 0x00})}), kUnknown),
                        kMalformed));
  // CONNECT with no client identifier.
  EXPECT_TRUE(FailsWith(decode(0x10, connect311(0x02, {}), kUnknown), kMalformed));
  // Will flag set, will message missing.
  EXPECT_TRUE(
      FailsWith(decode(0x10, connect311(0x06, cat({str("c"), str("w")})), kUnknown), kMalformed));
  // User name flag set, user name missing.
  EXPECT_TRUE(FailsWith(decode(0x10, connect311(0x82, str("c")), kUnknown), kMalformed));
  // Password flag set, password missing.
  EXPECT_TRUE(
      FailsWith(decode(0x10, connect311(0xC2, cat({str("c"), str("u")})), kUnknown), kMalformed));
  // SUBSCRIBE filter without its options byte.
  EXPECT_TRUE(FailsWith(decode(0x82, sub_body(kV311, 1, {}, str("a")), kV311), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x82, sub_body(kV5, 1, {}, str("a")), kV5), kMalformed));
  // A property value cut short by the property length: Message Expiry Interval
  // needs four bytes.
  EXPECT_TRUE(FailsWith(decode(0x30, cat({str("t"), bytes({0x02, 0x02, 0x00}), raw("")}), kV5),
                        kMalformed));
}

// Bytes after the last field the packet has.
TEST(Malformed, TrailingBytes) {
  // 3.1.1 PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: remaining length 2 exactly.
  EXPECT_TRUE(FailsWith(decode(0x40, bytes({0x00, 0x01, 0x00}), kV311), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x50, bytes({0x00, 0x01, 0x00}), kV311), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x62, bytes({0x00, 0x01, 0x00}), kV311), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x70, bytes({0x00, 0x01, 0x00}), kV311), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0xB0, bytes({0x00, 0x01, 0x00}), kV311), kMalformed));
  // 3.1.1 CONNACK: remaining length 2 exactly.
  EXPECT_TRUE(FailsWith(decode(0x20, bytes({0x00, 0x00, 0x00}), kV311), kMalformed));
  // 3.1.1 DISCONNECT has no body.
  EXPECT_TRUE(FailsWith(decode(0xE0, bytes({0x00}), kV311), kMalformed));
  // CONNECT with a byte after the last field its flags announce [MQTT-3.1.3-1].
  EXPECT_TRUE(FailsWith(decode(0x10, connect311(0x02, cat({str("c"), bytes({0x00})})), kUnknown),
                        kMalformed));
  EXPECT_TRUE(
      FailsWith(decode(0x10, connect5(0x02, {}, cat({str("c"), bytes({0x00})})), kUnknown),
                kMalformed));
  // v5 acknowledgement with a byte after its properties.
  EXPECT_TRUE(FailsWith(decode(0x40, bytes({0x00, 0x01, 0x10, 0x00, 0xFF}), kV5), kMalformed));
  // v5 DISCONNECT and CONNACK with a byte after their properties.
  EXPECT_TRUE(FailsWith(decode(0xE0, bytes({0x00, 0x00, 0x00}), kV5), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x20, bytes({0x00, 0x00, 0x00, 0x00}), kV5), kMalformed));
  // v5 AUTH with a byte after its properties.
  EXPECT_TRUE(
      FailsWith(decode(0xF0, cat({bytes({0x18}), props(cat({bytes({0x15}), str("m")})), bytes({0x00})}),
                       kV5),
                kMalformed));
}

// PINGREQ and PINGRESP have no variable header and no payload (3.12, 3.13).
TEST(Malformed, PingWithNonZeroRemainingLength) {
  for (ProtocolVersion v : kBothVersions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_TRUE(FailsWith(decode(0xC0, bytes({0x00}), v), kMalformed));
    EXPECT_TRUE(FailsWith(decode(0xD0, bytes({0x00, 0x00}), v), kMalformed));
    EXPECT_TRUE(FailsWith(stream_decode(bytes({0xC0, 0x01, 0x00}), v), kMalformed));
  }
}

// Reserved flag bits of the fixed header must hold the listed values (0000, or
// 0010 for PUBREL, SUBSCRIBE, UNSUBSCRIBE); anything else is a Malformed Packet
// [MQTT-2.1.3-1] (3.1.1: [MQTT-2.2.2-1], [MQTT-2.2.2-2]).
TEST(Malformed, ReservedFixedHeaderFlags) {
  struct Case {
    uint8_t good;
    std::vector<uint8_t> bad;
    Bytes body311;
    Bytes body5;
  };
  std::vector<Case> cases = {
      {0x10, {0x11, 0x12, 0x18}, connect311(0x02, str("c")), connect5(0x02, {}, str("c"))},
      {0x20, {0x21, 0x28}, bytes({0x00, 0x00}), bytes({0x00, 0x00, 0x00})},
      {0x40, {0x41, 0x42, 0x48}, bytes({0x00, 0x01}), bytes({0x00, 0x01})},
      {0x50, {0x51, 0x52}, bytes({0x00, 0x01}), bytes({0x00, 0x01})},
      {0x62, {0x60, 0x63, 0x6A, 0x66}, bytes({0x00, 0x01}), bytes({0x00, 0x01})},
      {0x70, {0x71, 0x72}, bytes({0x00, 0x01}), bytes({0x00, 0x01})},
      {0x82, {0x80, 0x83, 0x8A, 0x86}, sub_body(kV311, 1, {}, cat({str("a"), bytes({0x00})})),
       sub_body(kV5, 1, {}, cat({str("a"), bytes({0x00})}))},
      {0x90, {0x91, 0x92}, bytes({0x00, 0x01, 0x00}), bytes({0x00, 0x01, 0x00, 0x00})},
      {0xA2, {0xA0, 0xA3, 0xAA}, sub_body(kV311, 1, {}, str("a")), sub_body(kV5, 1, {}, str("a"))},
      {0xB0, {0xB1, 0xB2}, bytes({0x00, 0x01}), bytes({0x00, 0x01, 0x00, 0x00})},
      {0xC0, {0xC1, 0xC2, 0xC8, 0xCF}, bytes({}), bytes({})},
      {0xD0, {0xD1, 0xD8}, bytes({}), bytes({})},
      {0xE0, {0xE1, 0xE2, 0xEF}, bytes({}), bytes({})},
  };
  for (ProtocolVersion v : kBothVersions) {
    for (const Case& c : cases) {
      const Bytes& body = v == kV5 ? c.body5 : c.body311;
      ProtocolVersion dv = c.good == 0x10 ? kUnknown : v;
      SCOPED_TRACE(std::string(version_name(v)) + " body " + hex(body));
      ASSERT_TRUE(Accepted(decode(c.good, body, dv))) << "control: first byte " << int(c.good);
      for (uint8_t bad : c.bad) {
        EXPECT_TRUE(FailsWith(decode(bad, body, dv), kMalformed)) << "first byte 0x" << std::hex
                                                                 << int(bad);
      }
    }
  }
  // AUTH, MQTT 5 only.
  ASSERT_TRUE(Accepted(decode(0xF0, bytes({}), kV5)));
  EXPECT_TRUE(FailsWith(decode(0xF1, bytes({}), kV5), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0xF2, bytes({}), kV5), kMalformed));
}

// Packet type 0 is reserved, "Forbidden" (2.1.2).
TEST(Malformed, PacketTypeZero) {
  for (ProtocolVersion v : kBothVersions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_TRUE(FailsWith(decode(0x00, bytes({}), v), kMalformed));
    EXPECT_TRUE(FailsWith(decode(0x00, bytes({0x00, 0x01}), v), kMalformed));
    EXPECT_TRUE(FailsWith(stream_decode(bytes({0x00, 0x00}), v), kMalformed));
  }
}

// Type 15 is reserved in 3.1.1 (2.2.1) and 3.1: AUTH exists only in MQTT 5.
TEST(Malformed, AuthOn311Connection) {
  for (ProtocolVersion v : {kV31, kV311}) {
    SCOPED_TRACE(version_name(v));
    EXPECT_TRUE(FailsWith(decode(0xF0, bytes({}), v), kMalformed));
    EXPECT_TRUE(FailsWith(
        decode(0xF0, cat({bytes({0x18}), props(cat({bytes({0x15}), str("m")}))}), v),
        kMalformed));
  }
}

// ============================================================================
// PUBLISH
// ============================================================================

// Both QoS bits set: "it is a Malformed Packet" (5.0 3.3.1.2) [MQTT-3.3.1-4].
TEST(Malformed, PublishQoS3) {
  for (ProtocolVersion v : kBothVersions) {
    SCOPED_TRACE(version_name(v));
    Bytes body = publish_body(v, str("a"), bytes({0x00, 0x01}), {}, "x");
    ASSERT_TRUE(Accepted(decode(0x34, body, v)));
    EXPECT_TRUE(FailsWith(decode(0x36, body, v), kMalformed));
    EXPECT_TRUE(FailsWith(decode(0x3F, body, v), kMalformed));
  }
}

// "The DUP flag MUST be set to 0 for all QoS 0 messages" [MQTT-3.3.1-2].
TEST(Malformed, PublishQoS0WithDup) {
  for (ProtocolVersion v : kBothVersions) {
    SCOPED_TRACE(version_name(v));
    Bytes body = publish_body(v, str("a"), {}, {}, "x");
    ASSERT_TRUE(Accepted(decode(0x30, body, v)));
    EXPECT_TRUE(FailsWith(decode(0x38, body, v), kMalformed));
    EXPECT_TRUE(FailsWith(decode(0x39, body, v), kMalformed));
  }
}

// Non-zero packet identifiers in PUBLISH (QoS > 0), SUBSCRIBE, UNSUBSCRIBE
// [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1]); an acknowledgement carries the
// identifier of the packet it acknowledges, so never 0 either.
TEST(Malformed, PacketIdentifierZero) {
  for (ProtocolVersion v : kBothVersions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_TRUE(FailsWith(decode(0x32, publish_body(v, str("a"), bytes({0x00, 0x00}), {}, "x"), v),
                          kMalformed));
    EXPECT_TRUE(FailsWith(decode(0x34, publish_body(v, str("a"), bytes({0x00, 0x00}), {}, "x"), v),
                          kMalformed));
    EXPECT_TRUE(FailsWith(decode(0x40, bytes({0x00, 0x00}), v), kMalformed));
    EXPECT_TRUE(FailsWith(decode(0x82, sub_body(v, 0, {}, cat({str("a"), bytes({0x00})})), v),
                          kMalformed));
    EXPECT_TRUE(FailsWith(decode(0xA2, sub_body(v, 0, {}, str("a")), v), kMalformed));
  }
}

// Ill-formed UTF-8 in a UTF-8 Encoded String is a Malformed Packet
// [MQTT-1.5.4-1], and so is U+0000 [MQTT-1.5.4-2] (3.1.1: [MQTT-1.5.3-1],
// [MQTT-1.5.3-2]).
const std::vector<std::pair<const char*, Bytes>> kBadUtf8 = {
    {"invalid continuation", bytes({0xC3, 0x28})},
    {"lone continuation", bytes({'a', 0x80})},
    {"overlong NUL C0 80", bytes({0xC0, 0x80})},
    {"overlong 3-byte", bytes({0xE0, 0x80, 0xAF})},
    {"U+0000", bytes({'a', 0x00, 'b'})},
    {"surrogate U+D800", bytes({0xED, 0xA0, 0x80})},
    {"surrogate U+DFFF", bytes({0xED, 0xBF, 0xBF})},
    {"above U+10FFFF", bytes({0xF4, 0x90, 0x80, 0x80})},
    {"truncated sequence", bytes({'a', 0xE2, 0x82})},
    {"byte FF", bytes({0xFF})},
};

TEST(Malformed, InvalidUtf8InTopicName) {
  for (ProtocolVersion v : kBothVersions) {
    for (const auto& [name, b] : kBadUtf8) {
      SCOPED_TRACE(std::string(version_name(v)) + " " + name);
      EXPECT_TRUE(FailsWith(decode(0x30, publish_body(v, str_bytes(b), {}, {}, "x"), v), kMalformed));
    }
  }
}

TEST(Malformed, InvalidUtf8InOtherStrings) {
  for (const auto& [name, b] : kBadUtf8) {
    SCOPED_TRACE(name);
    // CONNECT client identifier, will topic, user name.
    EXPECT_TRUE(FailsWith(decode(0x10, connect311(0x02, str_bytes(b)), kUnknown), kMalformed));
    EXPECT_TRUE(FailsWith(
        decode(0x10, connect311(0x06, cat({str("c"), str_bytes(b), str("m")})), kUnknown),
        kMalformed));
    EXPECT_TRUE(FailsWith(decode(0x10, connect5(0x82, {}, cat({str("c"), str_bytes(b)})), kUnknown),
                          kMalformed));
    // SUBSCRIBE and UNSUBSCRIBE filters.
    EXPECT_TRUE(FailsWith(
        decode(0x82, sub_body(kV5, 1, {}, cat({str_bytes(b), bytes({0x00})})), kV5), kMalformed));
    EXPECT_TRUE(FailsWith(decode(0xA2, sub_body(kV311, 1, {}, str_bytes(b)), kV311), kMalformed));
    // A user property's name and value (a UTF-8 String Pair, [MQTT-1.5.7-1]).
    EXPECT_TRUE(FailsWith(
        decode(0x30, publish_body(kV5, str("t"), {}, cat({bytes({0x26}), str_bytes(b), str("v")}), "x"),
               kV5),
        kMalformed));
    EXPECT_TRUE(FailsWith(
        decode(0x30, publish_body(kV5, str("t"), {}, cat({bytes({0x26}), str("k"), str_bytes(b)}), "x"),
               kV5),
        kMalformed));
    // Reason String in a PUBACK.
    EXPECT_TRUE(FailsWith(
        decode(0x40, cat({bytes({0x00, 0x01, 0x80}), props(cat({bytes({0x1F}), str_bytes(b)}))}), kV5),
        kMalformed));
  }
}

// Binary data is not UTF-8: a password, a will payload, correlation data and a
// PUBLISH payload may hold any bytes.
TEST(Malformed, BinaryFieldsAcceptAnyBytes) {
  Bytes junk = bytes({0xFF, 0x00, 0xC0, 0x80, 0xED, 0xA0, 0x80});
  Decode c(0x10, connect311(0xC6, cat({str("c"), str("w"), str_bytes(junk), str("u"), str_bytes(junk)})),
           kUnknown);
  ASSERT_TRUE(Accepted(c.result));
  ASSERT_TRUE(std::holds_alternative<Connect>(c.result.value()));
  const Connect& connect = std::get<Connect>(c.result.value());
  ASSERT_TRUE(connect.password.has_value());
  EXPECT_EQ(connect.password->size(), junk.size());
  ASSERT_TRUE(connect.will.has_value());
  EXPECT_EQ(connect.will->payload.size(), junk.size());

  // Correlation Data and Authentication Data are Binary Data.
  EXPECT_TRUE(Accepted(
      decode(0x30, publish_body(kV5, str("t"), {}, cat({bytes({0x09}), str_bytes(junk)}), ""), kV5)));
  EXPECT_TRUE(Accepted(decode(
      0xF0, cat({bytes({0x18}), props(cat({bytes({0x15}), str("m"), bytes({0x16}), str_bytes(junk)}))}),
      kV5)));
  EXPECT_TRUE(Accepted(decode(0x30, cat({str("t"), junk}), kV311)));
}

// A topic name has no wildcard characters [MQTT-3.3.2-2].
TEST(Malformed, TopicNameWithWildcards) {
  for (ProtocolVersion v : kBothVersions) {
    for (const char* topic : {"a/+", "+", "#", "a/#", "a+b", "a#", "+/a"}) {
      SCOPED_TRACE(std::string(version_name(v)) + " " + topic);
      EXPECT_TRUE(FailsWith(decode(0x30, publish_body(v, str(topic), {}, {}, "x"), v),
                            kMalformed));
    }
  }
}

// "All Topic Names and Topic Filters MUST be at least one character long"
// [MQTT-4.7.3-1]; 3.1.1 has no topic alias to stand for an empty name.
TEST(Malformed, EmptyTopicName311) {
  EXPECT_TRUE(FailsWith(decode(0x30, publish_body(kV311, str(""), {}, {}, "x"), kV311),
                        kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x32, publish_body(kV311, str(""), bytes({0x00, 0x01}), {}, "x"), kV311),
                        kMalformed));
}

// "It is a Protocol Error if the Topic Name is zero length and there is no
// Topic Alias" (5.0 3.3.2.1).
TEST(Malformed, EmptyTopicName5WithoutTopicAlias) {
  EXPECT_TRUE(FailsWith(decode(0x30, publish_body(kV5, str(""), {}, {}, "x"), kV5), kProtocol));
  // With a Topic Alias it is accepted.
  EXPECT_TRUE(Accepted(decode(0x30, publish_body(kV5, str(""), {}, bytes({0x23, 0x00, 0x01}), "x"), kV5)));
}

// ============================================================================
// SUBSCRIBE and UNSUBSCRIBE
// ============================================================================

// Topic filter rules of 4.7.1 [MQTT-4.7.1-1], [MQTT-4.7.1-2], 4.7.3
// [MQTT-4.7.3-1] and, for shared subscriptions, 4.8.2 [MQTT-4.8.2-1],
// [MQTT-4.8.2-2].
TEST(Malformed, InvalidTopicFilters) {
  std::vector<const char*> invalid = {"a/#/b", "a#", "a/b+", "+a", "", "#/a", "a/##", "++"};
  std::vector<const char*> invalid_shared = {"$share/g", "$share//a", "$share/g+/a", "$share/g#/a",
                                             "$share/", "$share/g/", "$share/g/a#"};
  for (ProtocolVersion v : kBothVersions) {
    std::vector<const char*> filters = invalid;
    if (v == kV5) filters.insert(filters.end(), invalid_shared.begin(), invalid_shared.end());
    for (const char* f : filters) {
      SCOPED_TRACE(std::string(version_name(v)) + " filter \"" + f + "\"");
      EXPECT_TRUE(FailsWith(decode(0x82, sub_body(v, 1, {}, cat({str(f), bytes({0x00})})), v),
                            kMalformed));
      EXPECT_TRUE(FailsWith(decode(0xA2, sub_body(v, 1, {}, str(f)), v), kMalformed));
    }
  }
}

TEST(Malformed, ValidTopicFiltersAccepted) {
  std::vector<const char*> valid = {"#", "+", "a/+/b", "+/+", "/", "a//b", "a/#", "+/#", "$SYS/#"};
  for (ProtocolVersion v : kBothVersions) {
    std::vector<const char*> filters = valid;
    if (v == kV5) filters.push_back("$share/g/#");
    for (const char* f : filters) {
      SCOPED_TRACE(std::string(version_name(v)) + " filter \"" + f + "\"");
      Decode s(0x82, sub_body(v, 1, {}, cat({str(f), bytes({0x01})})), v);
      ASSERT_TRUE(Accepted(s.result));
      ASSERT_TRUE(std::holds_alternative<Subscribe>(s.result.value()));
      const Subscribe& sub = std::get<Subscribe>(s.result.value());
      ASSERT_EQ(sub.subscriptions.size(), 1u);
      EXPECT_EQ(sub.subscriptions[0].filter, f);
      EXPECT_EQ(sub.subscriptions[0].options.qos, QoS::k1);
      EXPECT_TRUE(Accepted(decode(0xA2, sub_body(v, 1, {}, str(f)), v)));
    }
  }
}

// "A SUBSCRIBE packet with no Payload is a Protocol Error" [MQTT-3.8.3-2]
// (3.1.1: [MQTT-3.8.3-3]); the same for UNSUBSCRIBE [MQTT-3.10.3-2].
TEST(Malformed, SubscribeWithNoSubscriptions) {
  EXPECT_TRUE(FailsWith(decode(0x82, sub_body(kV5, 1, {}, {}), kV5), kProtocol));
  EXPECT_TRUE(FailsWith(decode(0x82, sub_body(kV311, 1, {}, {}), kV311), kMalformed));
}

TEST(Malformed, UnsubscribeWithNoFilters) {
  EXPECT_TRUE(FailsWith(decode(0xA2, sub_body(kV5, 1, {}, {}), kV5), kProtocol));
  EXPECT_TRUE(FailsWith(decode(0xA2, sub_body(kV311, 1, {}, {}), kV311), kMalformed));
}

// v5 subscription options (3.8.3.1): reserved bits 6-7 non-zero is malformed
// [MQTT-3.8.3-5]; Maximum QoS 3 and Retain Handling 3 are Protocol Errors ("It
// is a Protocol Error if the Maximum QoS field has the value 3", "It is a
// Protocol Error to send a Retain Handling value of 3").
TEST(Malformed, Subscribe5OptionsReservedBits) {
  for (uint8_t options : {0x40, 0x80, 0xC0, 0x6D}) {
    SCOPED_TRACE(int(options));
    EXPECT_TRUE(FailsWith(decode(0x82, sub_body(kV5, 1, {}, cat({str("a"), bytes({options})})), kV5),
                          kMalformed));
  }
}

TEST(Malformed, Subscribe5OptionsQoS3) {
  EXPECT_TRUE(FailsWith(decode(0x82, sub_body(kV5, 1, {}, cat({str("a"), bytes({0x03})})), kV5),
                        kProtocol));
}

TEST(Malformed, Subscribe5OptionsRetainHandling3) {
  EXPECT_TRUE(FailsWith(decode(0x82, sub_body(kV5, 1, {}, cat({str("a"), bytes({0x30})})), kV5),
                        kProtocol));
  // Every legal bit at once is accepted: QoS 2, NL, RAP, RH 2.
  EXPECT_TRUE(Accepted(decode(0x82, sub_body(kV5, 1, {}, cat({str("a"), bytes({0x2E})})), kV5)));
}

// 3.1.1: "The Server MUST treat a SUBSCRIBE packet as malformed ... if any of
// Reserved bits in the payload are non-zero, or QoS is not 0,1 or 2"
// [MQTT-3-8.3-4]. The v5 option bits are reserved there.
TEST(Malformed, Subscribe311OptionsUpperBits) {
  for (uint8_t options : {0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFC, 0x03}) {
    SCOPED_TRACE(int(options));
    EXPECT_TRUE(FailsWith(
        decode(0x82, sub_body(kV311, 1, {}, cat({str("a"), bytes({options})})), kV311), kMalformed));
  }
}

// "It is a Protocol Error to set the No Local bit to 1 on a Shared
// Subscription" [MQTT-3.8.3-4].
TEST(Malformed, Subscribe5NoLocalOnSharedSubscription) {
  EXPECT_TRUE(FailsWith(
      decode(0x82, sub_body(kV5, 1, {}, cat({str("$share/g/a"), bytes({0x04})})), kV5), kProtocol));
}

// ============================================================================
// CONNECT and CONNACK
// ============================================================================

// A protocol name other than "MQTT" (or "MQIsdp" for 3.1) [MQTT-3.1.2-1]: the
// specification lets the server close and names no code; Starling says 0x81.
TEST(Malformed, ConnectWrongProtocolName) {
  for (uint8_t level : {0x04, 0x05}) {
    SCOPED_TRACE(int(level));
    Bytes body = cat({str("MQTX"), bytes({level, 0x02, 0x00, 0x3C}),
                      level == 5 ? bytes({0x00}) : bytes({}), str("c")});
    EXPECT_TRUE(FailsWith(decode(0x10, body, kUnknown),
                          kMalformed));
  }
  EXPECT_TRUE(FailsWith(decode(0x10, cat({str("mqtt"), bytes({0x04, 0x02, 0x00, 0x3C}), str("c")}),
                               kUnknown),
                        kMalformed));
}

// A level the server does not support: 0x84 Unsupported Protocol Version
// [MQTT-3.1.2-2].
TEST(Malformed, ConnectUnsupportedProtocolLevel) {
  for (uint8_t level : {0x06, 0x02, 0x00, 0xFF}) {
    SCOPED_TRACE(int(level));
    Bytes body = cat({str("MQTT"), bytes({level, 0x02, 0x00, 0x3C}), str("c")});
    EXPECT_TRUE(FailsWith(decode(0x10, body, kUnknown), ReasonCode::kUnsupportedProtocolVersion));
  }
}

// "If the reserved flag is not 0 it is a Malformed Packet" [MQTT-3.1.2-3].
TEST(Malformed, ConnectReservedFlagSet) {
  for (ProtocolVersion v : kBothVersions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_TRUE(FailsWith(decode(0x10, connect_for(v, 0x03, str("c")), kUnknown), kMalformed));
    EXPECT_TRUE(FailsWith(decode(0x10, connect_for(v, 0x01, str("c")), kUnknown), kMalformed));
  }
}

// Will QoS 3: "A value of 3 (0x03) is a Malformed Packet" (5.0 3.1.2.6)
// (3.1.1: [MQTT-3.1.2-14]).
TEST(Malformed, ConnectWillQoS3) {
  for (ProtocolVersion v : kBothVersions) {
    SCOPED_TRACE(version_name(v));
    Bytes will = v == kV5 ? cat({str("c"), bytes({0x00}), str("w"), str("m")})
                          : cat({str("c"), str("w"), str("m")});
    ASSERT_TRUE(Accepted(decode(0x10, connect_for(v, 0x16, will), kUnknown)));  // will QoS 2
    EXPECT_TRUE(FailsWith(decode(0x10, connect_for(v, 0x1E, will), kUnknown), kMalformed));
    // QoS 3 with the will flag clear.
    EXPECT_TRUE(FailsWith(decode(0x10, connect_for(v, 0x1A, str("c")), kUnknown),
                          kMalformed));
  }
}

// Will flag 0: will QoS and will retain must be 0 (5.0 [MQTT-3.1.2-11],
// [MQTT-3.1.2-13]; 3.1.1 [MQTT-3.1.2-13], [MQTT-3.1.2-15]).
TEST(Malformed, ConnectWillQoSOrRetainWithoutWillFlag) {
  for (ProtocolVersion v : kBothVersions) {
    SCOPED_TRACE(version_name(v));
    EXPECT_TRUE(FailsWith(decode(0x10, connect_for(v, 0x0A, str("c")), kUnknown),
                          kMalformed));  // will QoS 1
    EXPECT_TRUE(FailsWith(decode(0x10, connect_for(v, 0x12, str("c")), kUnknown),
                          kMalformed));  // will QoS 2
    EXPECT_TRUE(FailsWith(decode(0x10, connect_for(v, 0x22, str("c")), kUnknown),
                          kMalformed));  // will retain
  }
}

// 3.1.1: "If the User Name Flag is set to 0, the Password Flag MUST be set to 0"
// [MQTT-3.1.2-22]. MQTT 5 allows a password without a user name (3.1.2.9).
TEST(Malformed, Connect311PasswordWithoutUserName) {
  EXPECT_TRUE(FailsWith(decode(0x10, connect311(0x42, cat({str("c"), str("p")})), kUnknown),
                        kMalformed));
}

TEST(Malformed, Connect5PasswordWithoutUserNameAccepted) {
  Decode d(0x10, connect5(0x42, {}, cat({str("c"), str("p")})), kUnknown);
  ASSERT_TRUE(Accepted(d.result));
  ASSERT_TRUE(std::holds_alternative<Connect>(d.result.value()));
  const Connect& c = std::get<Connect>(d.result.value());
  EXPECT_FALSE(c.username.has_value());
  ASSERT_TRUE(c.password.has_value());
  EXPECT_EQ(*c.password, "p");
}

// CONNACK Acknowledge Flags: bits 7-1 are reserved and MUST be 0 [MQTT-3.2.2-1]
// (3.1.1 3.2.2.1).
TEST(Malformed, ConnackReservedAckFlags) {
  for (uint8_t flags : {0x02, 0x80, 0xFE}) {
    SCOPED_TRACE(int(flags));
    EXPECT_TRUE(FailsWith(decode(0x20, bytes({flags, 0x00}), kV311), kMalformed));
    EXPECT_TRUE(FailsWith(decode(0x20, bytes({flags, 0x00, 0x00}), kV5), kMalformed));
  }
}

// 3.1.1 CONNACK return codes above 5 are reserved (3.2.2.3).
TEST(Malformed, Connack311ReturnCodeAbove5) {
  EXPECT_TRUE(FailsWith(decode(0x20, bytes({0x00, 0x06}), kV311), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x20, bytes({0x00, 0x80}), kV311), kMalformed));
}

// 3.1.1 SUBACK return codes other than 0x00, 0x01, 0x02 and 0x80 are reserved
// [MQTT-3.9.3-2].
TEST(Malformed, Suback311ReservedReturnCode) {
  EXPECT_TRUE(FailsWith(decode(0x90, bytes({0x00, 0x01, 0x03}), kV311), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x90, bytes({0x00, 0x01, 0x87}), kV311), kMalformed));
}

// ============================================================================
// MQTT 5 properties
// ============================================================================

// "A Control Packet which contains an Identifier which is not valid for its
// packet type ... is a Malformed Packet" (2.2.2.2).
TEST(Malformed, UnknownPropertyIdentifier) {
  for (uint8_t id : {0x00, 0x04, 0x0A, 0x2B, 0x7F}) {
    SCOPED_TRACE(int(id));
    EXPECT_TRUE(FailsWith(
        decode(0x30, publish_body(kV5, str("t"), {}, bytes({id, 0x00, 0x00, 0x00, 0x00}), "x"), kV5),
        kMalformed));
  }
}

TEST(Malformed, PropertyNotAllowedInPacket) {
  // Topic Alias in CONNECT.
  EXPECT_TRUE(FailsWith(decode(0x10, connect5(0x02, bytes({0x23, 0x00, 0x01}), str("c")), kUnknown),
                        kMalformed));
  // Will Delay Interval in the CONNECT properties (it belongs to the will's).
  EXPECT_TRUE(FailsWith(
      decode(0x10, connect5(0x02, bytes({0x18, 0x00, 0x00, 0x00, 0x01}), str("c")), kUnknown),
      kMalformed));
  // Session Expiry Interval in the will properties.
  EXPECT_TRUE(FailsWith(
      decode(0x10,
             connect5(0x06, {},
                      cat({str("c"), props(bytes({0x11, 0x00, 0x00, 0x00, 0x01})), str("w"), str("m")})),
             kUnknown),
      kMalformed));
  // Session Expiry Interval in PUBLISH.
  EXPECT_TRUE(FailsWith(
      decode(0x30, publish_body(kV5, str("t"), {}, bytes({0x11, 0x00, 0x00, 0x00, 0x01}), "x"), kV5),
      kMalformed));
  // Topic Alias in PUBACK.
  EXPECT_TRUE(FailsWith(
      decode(0x40, cat({bytes({0x00, 0x01, 0x00}), props(bytes({0x23, 0x00, 0x01}))}), kV5),
      kMalformed));
  // Maximum QoS in CONNECT (a CONNACK property).
  EXPECT_TRUE(FailsWith(decode(0x10, connect5(0x02, bytes({0x24, 0x01}), str("c")), kUnknown),
                        kMalformed));
}

// "It is a Protocol Error to include the Session Expiry Interval more than
// once" (3.1.2.11.2), and so for every property but User Property and, in
// PUBLISH, Subscription Identifier.
TEST(Malformed, DuplicateSingleValuedProperty) {
  EXPECT_TRUE(FailsWith(
      decode(0x10,
             connect5(0x02, bytes({0x11, 0x00, 0x00, 0x00, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x0A}),
                      str("c")),
             kUnknown),
      kProtocol));
  EXPECT_TRUE(FailsWith(
      decode(0x30, publish_body(kV5, str("t"), {}, bytes({0x23, 0x00, 0x01, 0x23, 0x00, 0x02}), "x"),
             kV5),
      kProtocol));
  EXPECT_TRUE(FailsWith(
      decode(0x40,
             cat({bytes({0x00, 0x01, 0x80}),
                  props(cat({bytes({0x1F}), str("a"), bytes({0x1F}), str("b")}))}),
             kV5),
      kProtocol));
}

TEST(Malformed, UserPropertyTwiceAccepted) {
  Decode d(0x10,
           connect5(0x02, cat({bytes({0x26}), str("k"), str("1"), bytes({0x26}), str("k"), str("2")}),
                    str("c")),
           kUnknown);
  ASSERT_TRUE(Accepted(d.result));
  ASSERT_TRUE(std::holds_alternative<Connect>(d.result.value()));
  const Connect& c = std::get<Connect>(d.result.value());
  ASSERT_EQ(c.properties.user_properties.size(), 2u);
  EXPECT_EQ(c.properties.user_properties[0], (UserProperty{"k", "1"}));
  EXPECT_EQ(c.properties.user_properties[1], (UserProperty{"k", "2"}));
}

// Several Subscription Identifiers in a PUBLISH, one per matching subscription
// (3.3.2.3.8); "It is a Protocol Error to include the Subscription Identifier
// more than once" in a SUBSCRIBE (3.8.2.1.2).
TEST(Malformed, TwoSubscriptionIdentifiersInPublishAccepted) {
  Decode d(0x30, publish_body(kV5, str("t"), {}, bytes({0x0B, 0x01, 0x0B, 0x02}), "x"), kV5);
  ASSERT_TRUE(Accepted(d.result));
  ASSERT_TRUE(std::holds_alternative<Publish>(d.result.value()));
  EXPECT_EQ(std::get<Publish>(d.result.value()).properties.subscription_identifiers,
            (std::vector<uint32_t>{1, 2}));
}

TEST(Malformed, TwoSubscriptionIdentifiersInSubscribe) {
  EXPECT_TRUE(FailsWith(
      decode(0x82, sub_body(kV5, 1, bytes({0x0B, 0x01, 0x0B, 0x02}), cat({str("a"), bytes({0x00})})),
             kV5),
      kProtocol));
}

// Property values outside what their sections allow.
TEST(Malformed, PayloadFormatIndicatorOutOfRange) {
  // 3.3.2.3.2 defines 0 and 1 only and names no reason code for other values.
  EXPECT_TRUE(FailsWith(decode(0x30, publish_body(kV5, str("t"), {}, bytes({0x01, 0x02}), "x"), kV5),
                        kProtocol));
  EXPECT_TRUE(Accepted(decode(0x30, publish_body(kV5, str("t"), {}, bytes({0x01, 0x01}), "x"), kV5)));
}

// "It is a Protocol Error to include the Receive Maximum value more than once or
// for it to have the value 0" (3.1.2.11.3, 3.2.2.3.3).
TEST(Malformed, ReceiveMaximumZero) {
  EXPECT_TRUE(FailsWith(decode(0x10, connect5(0x02, bytes({0x21, 0x00, 0x00}), str("c")), kUnknown),
                        kProtocol));
  EXPECT_TRUE(FailsWith(decode(0x20, cat({bytes({0x00, 0x00}), props(bytes({0x21, 0x00, 0x00}))}), kV5),
                        kProtocol));
}

// "It is a Protocol Error to include the Maximum Packet Size more than once, or
// for the value to be set to zero" (3.1.2.11.4, 3.2.2.3.6).
TEST(Malformed, MaximumPacketSizeZero) {
  EXPECT_TRUE(FailsWith(
      decode(0x10, connect5(0x02, bytes({0x27, 0x00, 0x00, 0x00, 0x00}), str("c")), kUnknown),
      kProtocol));
}

// "It is a Protocol Error if the Subscription Identifier has a value of 0"
// (3.8.2.1.2); in PUBLISH it is 1 to 268,435,455 (3.3.2.3.8).
TEST(Malformed, SubscriptionIdentifierZero) {
  EXPECT_TRUE(FailsWith(
      decode(0x82, sub_body(kV5, 1, bytes({0x0B, 0x00}), cat({str("a"), bytes({0x00})})), kV5),
      kProtocol));
  EXPECT_TRUE(FailsWith(decode(0x30, publish_body(kV5, str("t"), {}, bytes({0x0B, 0x00}), "x"), kV5),
                        kProtocol));
}

// "A Topic Alias value of 0 or greater than the Maximum Topic Alias is a
// Protocol Error, the receiver uses DISCONNECT with Reason Code of 0x94 (Topic
// Alias invalid)" (3.3.4) [MQTT-3.3.2-8].
TEST(Malformed, TopicAliasZero) {
  EXPECT_TRUE(FailsWith(
      decode(0x30, publish_body(kV5, str("t"), {}, bytes({0x23, 0x00, 0x00}), "x"), kV5),
      ReasonCode::kTopicAliasInvalid));
}

// "a value other than 0 or 1" is a Protocol Error (3.1.2.11.6, 3.1.2.11.7).
TEST(Malformed, RequestProblemInformationTwo) {
  EXPECT_TRUE(FailsWith(decode(0x10, connect5(0x02, bytes({0x17, 0x02}), str("c")), kUnknown),
                        kProtocol));
  EXPECT_TRUE(FailsWith(decode(0x10, connect5(0x02, bytes({0x19, 0x02}), str("c")), kUnknown),
                        kProtocol));
  EXPECT_TRUE(Accepted(decode(0x10, connect5(0x02, bytes({0x17, 0x01, 0x19, 0x01}), str("c")), kUnknown)));
}

// "It is a Protocol Error to include Maximum QoS more than once, or to have a
// value other than 0 or 1" (3.2.2.3.4); Retain Available likewise (3.2.2.3.5).
TEST(Malformed, ConnackMaximumQoSTwo) {
  EXPECT_TRUE(FailsWith(decode(0x20, cat({bytes({0x00, 0x00}), props(bytes({0x24, 0x02}))}), kV5),
                        kProtocol));
  EXPECT_TRUE(FailsWith(decode(0x20, cat({bytes({0x00, 0x00}), props(bytes({0x25, 0x02}))}), kV5),
                        kProtocol));
  EXPECT_TRUE(Accepted(decode(0x20, cat({bytes({0x00, 0x00}), props(bytes({0x24, 0x01}))}), kV5)));
}

// The property length runs past the packet, or a property runs past the
// property length (2.2.2.1).
TEST(Malformed, PropertyLengthLongerThanRemainingBytes) {
  EXPECT_TRUE(FailsWith(decode(0x30, cat({str("t"), bytes({0x09, 0x01, 0x00})}), kV5), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0x40, bytes({0x00, 0x01, 0x00, 0x05, 0x1F, 0x00}), kV5), kMalformed));
  EXPECT_TRUE(FailsWith(decode(0xE0, bytes({0x00, 0x03, 0x11}), kV5), kMalformed));
  // Property length 1, but Message Expiry Interval takes 5 bytes; the rest would
  // be read from the payload.
  EXPECT_TRUE(FailsWith(
      decode(0x30, cat({str("t"), bytes({0x01, 0x02, 0x00, 0x00, 0x00, 0x05})}), kV5), kMalformed));
}

// "It is a Protocol Error to include Authentication Data if there is no
// Authentication Method" (3.1.2.11.10).
TEST(Malformed, AuthenticationDataWithoutMethod) {
  EXPECT_TRUE(FailsWith(
      decode(0x10, connect5(0x02, cat({bytes({0x16}), str("d")}), str("c")), kUnknown), kProtocol));
}

// ============================================================================
// Reason codes
// ============================================================================

// Each packet carries only the reason codes of its own table (2.4, and e.g.
// "The Client or Server sending the PUBACK packet MUST use one of the PUBACK
// Reason Codes" [MQTT-3.4.2-1]). No receiver's reason code is named.
TEST(Malformed, ReasonCodeNotAllowedInPacket) {
  std::vector<std::pair<uint8_t, Bytes>> cases = {
      {0x40, bytes({0x00, 0x01, 0x04})},              // PUBACK 0x04
      {0x40, bytes({0x00, 0x01, 0x8E})},              // PUBACK 0x8E
      {0x50, bytes({0x00, 0x01, 0x11})},              // PUBREC 0x11
      {0x62, bytes({0x00, 0x01, 0x10})},              // PUBREL 0x10
      {0x70, bytes({0x00, 0x01, 0x80})},              // PUBCOMP 0x80
      {0x20, bytes({0x00, 0x04, 0x00})},              // CONNACK 0x04
      {0x90, bytes({0x00, 0x01, 0x00, 0x10})},        // SUBACK 0x10
      {0xB0, bytes({0x00, 0x01, 0x00, 0x01})},        // UNSUBACK 0x01
      {0xE0, bytes({0x18})},                          // DISCONNECT 0x18
      {0xF0, cat({bytes({0x10}), props(cat({bytes({0x15}), str("m")}))})},  // AUTH 0x10
  };
  for (const auto& [first, body] : cases) {
    SCOPED_TRACE(hex(body));
    EXPECT_TRUE(FailsWith(decode(first, body, kV5), kMalformed))
        << "first byte 0x" << std::hex << int(first);
  }
  // The same packets with allowed codes.
  EXPECT_TRUE(Accepted(decode(0x40, bytes({0x00, 0x01, 0x10}), kV5)));
  EXPECT_TRUE(Accepted(decode(0x62, bytes({0x00, 0x01, 0x92}), kV5)));
  EXPECT_TRUE(Accepted(decode(0x90, bytes({0x00, 0x01, 0x00, 0x8F}), kV5)));
  EXPECT_TRUE(Accepted(decode(0xE0, bytes({0x04}), kV5)));
}

// ============================================================================
// The stream
// ============================================================================

// A packet larger than the maximum is refused as soon as its fixed header is
// complete (decoder.h), with 0x95 Packet too large (3.1.2.11.4).
TEST(Malformed, StreamRefusesTooLargePacketFromHeaderAlone) {
  StreamDecoder d(100, kV5);
  d.feed(bytes({0x30, 0xE8, 0x07}));  // PUBLISH, remaining length 1000
  auto r = d.next();
  EXPECT_TRUE(FailsWith(r, ReasonCode::kPacketTooLarge));
  // The stream is out of sync: the error stays.
  EXPECT_TRUE(FailsWith(d.next(), ReasonCode::kPacketTooLarge));
  d.feed(bytes({0x00, 0x01, 'a'}));
  EXPECT_TRUE(FailsWith(d.next(), ReasonCode::kPacketTooLarge));
  EXPECT_TRUE(FailsWith(d.next(), ReasonCode::kPacketTooLarge));
}

// The maximum counts the whole packet, fixed header included.
TEST(Malformed, StreamMaximumPacketSizeBoundary) {
  // 2 bytes of fixed header + 3 of topic + 95 of payload = 100.
  Bytes at_limit = wire(0x30, cat({str("a"), Bytes(95, 'x')}));
  ASSERT_EQ(at_limit.size(), 100u);
  auto ok = stream_decode(at_limit, kV311, 100);
  ASSERT_TRUE(Accepted(ok));
  EXPECT_TRUE(ok.value().has_value());

  Bytes over = wire(0x30, cat({str("a"), Bytes(96, 'x')}));
  ASSERT_EQ(over.size(), 101u);
  StreamDecoder d(100, kV311);
  d.feed(ByteView(over).first(2));  // the fixed header only
  EXPECT_TRUE(FailsWith(d.next(), ReasonCode::kPacketTooLarge));
}

// After a malformed header the decoder keeps returning the error, whatever
// arrives after it.
TEST(Malformed, StreamErrorIsSticky) {
  StreamDecoder d(kMaxPacketSize, kV311);
  d.feed(bytes({0xC0, 0x80, 0x00}));
  EXPECT_TRUE(FailsWith(d.next(), kMalformed));
  d.feed(bytes({0xC0, 0x00}));
  EXPECT_TRUE(FailsWith(d.next(), kMalformed));
  EXPECT_TRUE(FailsWith(d.next(), kMalformed));

  StreamDecoder e(kMaxPacketSize, kV311);
  e.feed(cat({wire(0x36, cat({str("a"), bytes({0x00, 0x01})})), bytes({0xC0, 0x00})}));  // QoS 3
  EXPECT_TRUE(FailsWith(e.next(), kMalformed));
  EXPECT_TRUE(FailsWith(e.next(), kMalformed));
}

// "the first packet sent from the Client to the Server MUST be a CONNECT
// packet" [MQTT-3.1.0-1]. Before the CONNECT the version is unknown.
TEST(Malformed, StreamFirstPacketNotConnect) {
  for (const Bytes& w : {bytes({0xC0, 0x00}), wire(0x30, cat({str("a"), raw("x")})),
                         bytes({0x40, 0x02, 0x00, 0x01}), bytes({0xE0, 0x00})}) {
    SCOPED_TRACE(hex(w));
    StreamDecoder d;
    d.feed(w);
    EXPECT_TRUE(FailsWith(d.next(), kProtocol));
  }
}

// ============================================================================
// The encoder refuses what would be malformed (encoder.h)
// ============================================================================

testing::AssertionResult EncodeRefused(const Packet& p, ProtocolVersion v) {
  std::vector<uint8_t> out = {0xAA};
  Status s = encode(p, v, out);
  if (s.ok()) return testing::AssertionFailure() << "encoded as " << hex(out);
  if (out != std::vector<uint8_t>{0xAA}) {
    return testing::AssertionFailure() << "appended bytes on error: " << hex(out);
  }
  return testing::AssertionSuccess();
}

TEST(Malformed, EncoderRefusesMalformedPackets) {
  for (ProtocolVersion v : kBothVersions) {
    SCOPED_TRACE(version_name(v));
    Publish dup0;
    dup0.topic = "a";
    dup0.dup = true;
    EXPECT_TRUE(EncodeRefused(dup0, v)) << "QoS 0 with DUP";

    Publish no_id;
    no_id.topic = "a";
    no_id.qos = QoS::k1;
    EXPECT_TRUE(EncodeRefused(no_id, v)) << "QoS 1 without packet identifier";

    Subscribe empty_sub;
    empty_sub.packet_id = 1;
    EXPECT_TRUE(EncodeRefused(empty_sub, v)) << "SUBSCRIBE with no subscriptions";

    Subscribe sub_no_id;
    sub_no_id.subscriptions = {Subscription{"a", {}}};
    EXPECT_TRUE(EncodeRefused(sub_no_id, v)) << "SUBSCRIBE without packet identifier";

    Unsubscribe empty_unsub;
    empty_unsub.packet_id = 1;
    EXPECT_TRUE(EncodeRefused(empty_unsub, v)) << "UNSUBSCRIBE with no filters";

    std::string long_topic(65536, 'a');
    Publish too_long;
    too_long.topic = long_topic;
    EXPECT_TRUE(EncodeRefused(too_long, v)) << "topic longer than 65,535 bytes";
  }
  Connect c;
  c.version = kV5;
  c.client_id = "c";
  c.properties.topic_alias = 1;
  EXPECT_TRUE(EncodeRefused(c, kV5)) << "Topic Alias in CONNECT";

  Puback a;
  a.packet_id = 1;
  a.reason_code = ReasonCode::kDisconnectWithWill;
  EXPECT_TRUE(EncodeRefused(a, kV5)) << "PUBACK with reason 0x04";
}

}  // namespace
