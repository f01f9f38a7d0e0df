#include "cluster/routing/inbound_batches.h"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

namespace starling::cluster {
namespace {

// Records the answer a stream would send.
struct Answered {
  std::optional<std::vector<uint32_t>> refused;
  BatchOutcome::Answer callback() {
    return [this](const std::vector<uint32_t>& r) { refused = r; };
  }
};

TEST(InboundBatchesTest, NewBatchesAreFreshInOrder) {
  InboundBatches batches;
  EXPECT_TRUE(batches.receive(7, 1).fresh);
  EXPECT_TRUE(batches.receive(7, 2).fresh);
  EXPECT_TRUE(batches.receive(8, 1).fresh) << "another link counts on its own";
}

TEST(InboundBatchesTest, RepeatWaitsForTheFirstCopysOutcome) {
  InboundBatches batches;
  auto first = batches.receive(7, 1);
  ASSERT_TRUE(first.fresh);
  first.outcome->add_part();  // one delivery under way
  Answered on_old_stream;
  first.outcome->when_complete(on_old_stream.callback());
  first.outcome->seal();
  EXPECT_FALSE(on_old_stream.refused) << "answered before its delivery finished";

  // The old stream broke; the sender sends batch 1 again on a new one.
  auto again = batches.receive(7, 1);
  EXPECT_FALSE(again.fresh) << "a repeated batch would be delivered twice";
  Answered on_new_stream;
  again.outcome->when_complete(on_new_stream.callback());
  EXPECT_FALSE(on_new_stream.refused);

  first.outcome->part_done(false, 0);
  ASSERT_TRUE(on_new_stream.refused);
  EXPECT_EQ(*on_new_stream.refused, std::vector<uint32_t>{0}) << "the refusal reaches the new stream too";
  ASSERT_TRUE(on_old_stream.refused);
}

TEST(InboundBatchesTest, RepeatOfACompleteBatchIsAnsweredAtOnce) {
  InboundBatches batches;
  auto first = batches.receive(7, 1);
  first.outcome->seal();
  auto again = batches.receive(7, 1);
  EXPECT_FALSE(again.fresh);
  Answered answered;
  again.outcome->when_complete(answered.callback());
  ASSERT_TRUE(answered.refused);
  EXPECT_TRUE(answered.refused->empty());
}

TEST(InboundBatchesTest, LongForgottenRepeatIsAnsweredAndNotDelivered) {
  InboundBatches batches;
  for (uint64_t s = 1; s <= 1000; ++s) batches.receive(7, s).outcome->seal();
  auto again = batches.receive(7, 3);
  EXPECT_FALSE(again.fresh);
  Answered answered;
  again.outcome->when_complete(answered.callback());
  EXPECT_TRUE(answered.refused);
}

}  // namespace
}  // namespace starling::cluster
