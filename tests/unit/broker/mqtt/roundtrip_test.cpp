// Every packet type with every property: encode, decode, compare; for each
// protocol version.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "broker/mqtt/decoder.h"
#include "broker/mqtt/encoder.h"
#include "broker/mqtt/packet_codec.h"
#include "tests/support/mqtt_samples.h"

namespace starling::mqtt {
namespace {

class RoundTrip : public ::testing::TestWithParam<ProtocolVersion> {};

std::string describe(const Packet& p) { return std::string(packet_type_name(type_of(p))); }

TEST_P(RoundTrip, EveryPacketDecodesToItself) {
  const ProtocolVersion v = GetParam();
  const auto samples = test::sample_packets(v);
  std::set<PacketType> seen;
  for (const Packet& p : samples) {
    SCOPED_TRACE(describe(p));
    std::vector<uint8_t> bytes;
    auto st = encode(p, v, bytes);
    ASSERT_TRUE(st.ok()) << st.error().detail;

    StreamDecoder decoder(kMaxPacketSize, v);
    decoder.feed(bytes);
    auto next = decoder.next();
    ASSERT_TRUE(next.ok()) << next.error().detail;
    ASSERT_TRUE(next->has_value());
    EXPECT_EQ((*next)->packet, p);
    EXPECT_EQ(decoder.buffered(), 0u);

    // Encoding the decoded packet gives the same bytes.
    std::vector<uint8_t> again;
    ASSERT_TRUE(encode((*next)->packet, v, again).ok());
    EXPECT_EQ(again, bytes);
    seen.insert(type_of(p));
  }
  // Every packet type of the version is covered.
  EXPECT_EQ(seen.size(), v == ProtocolVersion::kV5 ? 15u : 14u);
}

// The identifiers on the wire of an encoded property section.
std::set<uint8_t> ids_on_wire(const Properties& props) {
  std::vector<uint8_t> buf(64 * 1024);
  detail::Writer w(buf.data());
  detail::write_properties(props, w);
  detail::Reader r(ByteView(buf.data(), w.size()));
  uint32_t len = 0;
  EXPECT_TRUE(r.varint(len).ok());
  EXPECT_EQ(len, r.remaining());
  std::set<uint8_t> ids;
  while (!r.at_end()) {
    uint32_t id = 0;
    EXPECT_TRUE(r.varint(id).ok());
    const PropertyInfo* info = property_info(static_cast<uint8_t>(id));
    if (info == nullptr) {
      ADD_FAILURE() << "unknown id " << id;
      break;
    }
    ids.insert(static_cast<uint8_t>(id));
    uint8_t b;
    uint16_t s;
    uint32_t n;
    std::string_view sv;
    switch (info->type) {
      case PropertyType::kByte: EXPECT_TRUE(r.u8(b).ok()); break;
      case PropertyType::kTwoByte: EXPECT_TRUE(r.u16(s).ok()); break;
      case PropertyType::kFourByte: EXPECT_TRUE(r.u32(n).ok()); break;
      case PropertyType::kVarInt: EXPECT_TRUE(r.varint(n).ok()); break;
      case PropertyType::kString: EXPECT_TRUE(r.string(sv).ok()); break;
      case PropertyType::kBinary: EXPECT_TRUE(r.binary(sv).ok()); break;
      case PropertyType::kStringPair:
        EXPECT_TRUE(r.string(sv).ok());
        EXPECT_TRUE(r.string(sv).ok());
        break;
    }
  }
  return ids;
}

TEST(Properties, EveryPropertyIsOnTheWireExactlyWhereAllowed) {
  // full_properties(ctx) feeds the round trips above; this checks that it sets
  // every property the context allows, so those round trips covered all 27.
  for (int c = 0; c <= static_cast<int>(PropertyContext::kWill); ++c) {
    auto ctx = static_cast<PropertyContext>(c);
    const Properties props = test::full_properties(ctx);
    ASSERT_TRUE(check_properties_allowed(props, ctx).ok()) << c;
    const auto ids = ids_on_wire(props);
    for (int id = 1; id < 64; ++id) {
      const PropertyInfo* info = property_info(static_cast<uint8_t>(id));
      if (info == nullptr) continue;
      EXPECT_EQ(ids.count(static_cast<uint8_t>(id)) == 1, property_allowed_in(info->id, ctx))
          << info->name << " in context " << c;
    }
    // And the section decodes to the same properties.
    std::vector<uint8_t> buf(64 * 1024);
    detail::Writer w(buf.data());
    detail::write_properties(props, w);
    detail::Reader r(ByteView(buf.data(), w.size()));
    Properties back;
    ASSERT_TRUE(detail::read_properties(r, ctx, back).ok());
    EXPECT_EQ(back, props);
  }
}

TEST(PropertyTable, DefinesAllTwentySevenProperties) {
  int count = 0;
  for (int id = 0; id < 256; ++id) count += property_info(static_cast<uint8_t>(id)) != nullptr;
  EXPECT_EQ(count, 27);
  EXPECT_EQ(property_info(0x00), nullptr);
  EXPECT_EQ(property_info(0x04), nullptr);
  EXPECT_EQ(property_info(0x2B), nullptr);
  EXPECT_TRUE(property_allowed_in(PropertyId::kTopicAlias, PropertyContext::kPublish));
  EXPECT_FALSE(property_allowed_in(PropertyId::kTopicAlias, PropertyContext::kConnect));
  EXPECT_TRUE(property_allowed_in(PropertyId::kWillDelayInterval, PropertyContext::kWill));
  EXPECT_FALSE(property_allowed_in(PropertyId::kWillDelayInterval, PropertyContext::kConnect));
}

INSTANTIATE_TEST_SUITE_P(AllVersions, RoundTrip,
                         ::testing::Values(ProtocolVersion::kV31, ProtocolVersion::kV311, ProtocolVersion::kV5),
                         [](const auto& info) { return "v" + std::to_string(static_cast<int>(info.param)); });

}  // namespace
}  // namespace starling::mqtt
