// Incremental decoding: a stream of packets split anywhere decodes the same.
#include <gtest/gtest.h>

#include "broker/mqtt/decoder.h"
#include "broker/mqtt/encoder.h"
#include "tests/support/mqtt_samples.h"

namespace starling::mqtt {
namespace {

std::vector<uint8_t> encode_all(const std::vector<Packet>& packets, ProtocolVersion v) {
  std::vector<uint8_t> out;
  for (const Packet& p : packets) EXPECT_TRUE(encode(p, v, out).ok());
  return out;
}

// Feeds `stream` in the pieces given by `cuts` and returns what came out.
std::vector<Decoded> decode_in_pieces(const std::vector<uint8_t>& stream, const std::vector<size_t>& cuts) {
  StreamDecoder decoder;  // version learnt from the CONNECT at the start
  std::vector<Decoded> out;
  size_t from = 0;
  auto drain = [&] {
    while (true) {
      auto next = decoder.next();
      EXPECT_TRUE(next.ok()) << (next.ok() ? "" : next.error().detail);
      if (!next.ok() || !next->has_value()) return;
      out.push_back(std::move(**next));
    }
  };
  for (size_t cut : cuts) {
    decoder.feed(ByteView(stream.data() + from, cut - from));
    drain();
    from = cut;
  }
  decoder.feed(ByteView(stream.data() + from, stream.size() - from));
  drain();
  EXPECT_EQ(decoder.buffered(), 0u);
  return out;
}

void expect_same(const std::vector<Decoded>& got, const std::vector<Packet>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i].packet, want[i]) << "packet " << i;
}

class Stream : public ::testing::TestWithParam<ProtocolVersion> {};

TEST_P(Stream, SplitAtEveryByteDecodesTheSame) {
  auto packets = test::sample_packets(GetParam());
  // Leave out the 20 KB PUBLISH: it would make this quadratic test slow, and
  // the one-byte-at-a-time test below covers it.
  std::erase_if(packets, [](const Packet& p) {
    auto* pub = std::get_if<Publish>(&p);
    return pub != nullptr && pub->payload.size() > 1000;
  });
  const auto stream = encode_all(packets, GetParam());
  for (size_t cut = 1; cut < stream.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    expect_same(decode_in_pieces(stream, {cut}), packets);
    if (HasFailure()) return;
  }
}

TEST_P(Stream, OneByteAtATime) {
  const auto packets = test::sample_packets(GetParam());
  const auto stream = encode_all(packets, GetParam());
  std::vector<size_t> cuts;
  for (size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
  expect_same(decode_in_pieces(stream, cuts), packets);
}

TEST_P(Stream, DecodedViewsOutliveTheStreamBuffer) {
  // A packet's views point into its own backing buffer, not the decoder's, so
  // they stay valid after the decoder moved on or went away.
  const auto packets = test::sample_packets(GetParam());
  const auto stream = encode_all(packets, GetParam());
  std::vector<Decoded> kept;
  {
    StreamDecoder decoder;
    for (uint8_t byte : stream) {
      decoder.feed(ByteView(&byte, 1));
      auto next = decoder.next();
      ASSERT_TRUE(next.ok());
      if (next->has_value()) kept.push_back(std::move(**next));
      decoder.release_if_empty();
    }
  }
  expect_same(kept, packets);
}

TEST(Stream, ZeroCopyReadsThroughPrepareAndCommit) {
  const auto packets = test::sample_packets(ProtocolVersion::kV5);
  const auto stream = encode_all(packets, ProtocolVersion::kV5);
  StreamDecoder decoder;
  size_t from = 0;
  std::vector<Decoded> got;
  while (from < stream.size()) {
    auto space = decoder.prepare(777);  // an odd read size
    size_t n = std::min(space.size(), stream.size() - from);
    std::copy_n(stream.begin() + from, n, space.begin());
    decoder.commit(n);
    from += n;
    while (true) {
      auto next = decoder.next();
      ASSERT_TRUE(next.ok());
      if (!next->has_value()) break;
      got.push_back(std::move(**next));
    }
  }
  expect_same(got, packets);
}

TEST(Stream, IdleDecoderHoldsNoBuffer) {
  StreamDecoder decoder;
  EXPECT_EQ(decoder.capacity(), 0u);
  const uint8_t connect[] = {0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00};
  decoder.feed(connect);
  auto next = decoder.next();
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ(decoder.version(), ProtocolVersion::kV311);
  decoder.release_if_empty();
  EXPECT_EQ(decoder.capacity(), 0u);
}

TEST(Stream, SmallAcknowledgementsNeedNoBackingBuffer) {
  StreamDecoder decoder(kMaxPacketSize, ProtocolVersion::kV5);
  const uint8_t puback[] = {0x40, 0x02, 0x00, 0x01, 0x40, 0x04, 0x00, 0x02, 0x10, 0x00};
  decoder.feed(puback);
  for (int i = 0; i < 2; ++i) {
    auto next = decoder.next();
    ASSERT_TRUE(next.ok());
    ASSERT_TRUE(next->has_value());
    EXPECT_EQ((*next)->backing, nullptr);
  }
}

TEST(Stream, PublishPayloadIsAViewOfTheBackingBuffer) {
  StreamDecoder decoder(kMaxPacketSize, ProtocolVersion::kV311);
  const uint8_t publish[] = {0x30, 0x06, 0x00, 0x01, 't', 'a', 'b', 'c'};
  decoder.feed(publish);
  auto next = decoder.next();
  ASSERT_TRUE(next.ok() && next->has_value());
  const auto& pub = std::get<Publish>((*next)->packet);
  const auto* base = reinterpret_cast<const char*>((*next)->backing.get());
  EXPECT_EQ(pub.payload, "abc");
  EXPECT_EQ(pub.payload.data(), base + 3);  // no copy of its own
}

INSTANTIATE_TEST_SUITE_P(AllVersions, Stream,
                         ::testing::Values(ProtocolVersion::kV31, ProtocolVersion::kV311, ProtocolVersion::kV5),
                         [](const auto& info) { return "v" + std::to_string(static_cast<int>(info.param)); });

}  // namespace
}  // namespace starling::mqtt

namespace starling::mqtt {
namespace {

TEST(EncodePublishHeader, HeaderPlusPayloadEqualsTheWholePacket) {
  for (ProtocolVersion v : {ProtocolVersion::kV311, ProtocolVersion::kV5}) {
    for (const Packet& p : test::sample_packets(v)) {
      const auto* pub = std::get_if<Publish>(&p);
      if (pub == nullptr) continue;
      std::vector<uint8_t> whole, split;
      ASSERT_TRUE(encode(p, v, whole).ok());
      ASSERT_TRUE(encode_publish_header(*pub, v, split).ok());
      split.insert(split.end(), pub->payload.begin(), pub->payload.end());
      EXPECT_EQ(split, whole);
    }
  }
}

}  // namespace
}  // namespace starling::mqtt
