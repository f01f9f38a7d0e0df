#include "cluster/sessions/connect_fence.h"

#include <gtest/gtest.h>

namespace starling::cluster {
namespace {

TEST(ConnectFence, OfTwoConnectsAtOnceTheNewerWinsOnBothSides) {
  ConnectFence a{"a"};
  ConnectFence b{"b"};
  const ConnectEpoch ea = a.begin("x");
  const ConnectEpoch eb = b.begin("x");
  // Each asks the other while both are under way.
  const bool a_yields_to_b = a.yield_to("x", eb);
  const bool b_yields_to_a = b.yield_to("x", ea);
  EXPECT_NE(a_yields_to_b, b_yields_to_a) << "exactly one side yields";
  const bool a_won = a.end("x", ea) && b_yields_to_a;
  const bool b_won = b.end("x", eb) && a_yields_to_b;
  EXPECT_NE(a_won, b_won);
  EXPECT_EQ(b_won, ea < eb);
}

TEST(ConnectFence, WithNothingUnderWayEveryoneYieldsAndAConnectStands) {
  ConnectFence a{"a"};
  EXPECT_TRUE(a.yield_to("x", ConnectEpoch{1, "b"}));
  const ConnectEpoch e = a.begin("x");
  EXPECT_GT(e.hlc, 1u);
  EXPECT_TRUE(a.end("x", e));
  // An older one from elsewhere whose request comes after the session
  // opened here does not take it.
  EXPECT_FALSE(a.yield_to("x", ConnectEpoch{e.hlc - 1, "b"}));
  // A newer one does, and then an older one than that is refused no more here.
  EXPECT_TRUE(a.yield_to("x", ConnectEpoch{e.hlc + 1, "b"}));
  EXPECT_TRUE(a.yield_to("x", ConnectEpoch{e.hlc - 1, "b"}));
}

TEST(ConnectFence, AConnectThatStoodIsForgottenAfterAWhile) {
  ConnectFence a{"a", std::chrono::milliseconds(0)};
  const ConnectEpoch e = a.begin("x");
  EXPECT_TRUE(a.end("x", e));
  EXPECT_TRUE(a.yield_to("x", ConnectEpoch{e.hlc - 1, "b"})) << "remembered past its time";
}

TEST(ConnectFence, ASecondConnectHereReplacesTheFirst) {
  ConnectFence a{"a"};
  const ConnectEpoch first = a.begin("x");
  const ConnectEpoch second = a.begin("x");
  EXPECT_LT(first, second);
  EXPECT_TRUE(a.end("x", first));  // the registry sorts these two out
  EXPECT_FALSE(a.yield_to("x", ConnectEpoch{first.hlc, "b"}));
  EXPECT_TRUE(a.end("x", second));
}

}  // namespace
}  // namespace starling::cluster
