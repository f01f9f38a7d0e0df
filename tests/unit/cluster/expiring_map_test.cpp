// ExpiringMap: entries go when due, unless put again or erased since.
#include "cluster/expiring_map.h"

#include <gtest/gtest.h>

namespace starling::cluster {
namespace {

using namespace std::chrono_literals;
using Clock = ExpiringMap<int>::Clock;

TEST(ExpiringMap, ForgetsWhatIsDueAndKeepsWhatWasPutAgain) {
  ExpiringMap<int> map;
  const auto t0 = Clock::now();
  map.put("a", 1, t0 + 1s);
  map.put("b", 2, t0 + 2s);
  map.put("kept", 3, std::nullopt);
  map.put("b", 20, std::nullopt);  // put again: no longer forgotten at t0 + 2s
  map.forget_due(t0 + 500ms);
  ASSERT_NE(map.find("a"), nullptr);
  map.forget_due(t0 + 5s);
  EXPECT_EQ(map.find("a"), nullptr);
  ASSERT_NE(map.find("b"), nullptr);
  EXPECT_EQ(*map.find("b"), 20);
  EXPECT_NE(map.find("kept"), nullptr);
  EXPECT_EQ(map.size(), 2u);
  map.erase("kept");
  EXPECT_EQ(map.find("kept"), nullptr);
}

TEST(ExpiringMap, AnEntryPutAgainWithItsOwnTimeGoesThen) {
  ExpiringMap<int> map;
  const auto t0 = Clock::now();
  map.put("a", 1, t0 + 1s);
  map.put("a", 2, t0 + 3s);
  map.forget_due(t0 + 2s);
  ASSERT_NE(map.find("a"), nullptr) << "the first time to forget it was for the first put";
  map.forget_due(t0 + 3s);
  EXPECT_EQ(map.find("a"), nullptr);
}

}  // namespace
}  // namespace starling::cluster
