#include "cluster/routing/retained_versions.h"

#include <gtest/gtest.h>

namespace starling::cluster {
namespace {

TEST(RetainedVersions, LocalStampsGrowAndGoPastWhatPeersSent) {
  RetainedVersions v{"n1"};
  int applied = 0;
  const uint64_t a = v.stamp("t", [&] { ++applied; });
  const uint64_t b = v.stamp("t", [&] { ++applied; });
  EXPECT_LT(a, b);
  EXPECT_EQ(applied, 2);
  // A peer's clock far ahead: the next local stamp still goes past it.
  const uint64_t ahead = b + (uint64_t{1000} << 16);
  EXPECT_TRUE(v.accept("u", RetainedVersion{ahead, "n2"}, [] {}));
  EXPECT_GT(v.stamp("t", [] {}), ahead);
}

TEST(RetainedVersions, TheLastWriterWinsThenTheNodeId) {
  RetainedVersions v{"n1"};
  int applied = 0;
  const auto apply = [&] { ++applied; };
  EXPECT_TRUE(v.accept("t", RetainedVersion{100, "n2"}, apply));
  EXPECT_FALSE(v.accept("t", RetainedVersion{99, "n3"}, apply));   // older
  EXPECT_FALSE(v.accept("t", RetainedVersion{100, "n2"}, apply));  // the same again
  EXPECT_FALSE(v.accept("t", RetainedVersion{100, "n1"}, apply));  // same time, lower id
  EXPECT_TRUE(v.accept("t", RetainedVersion{100, "n3"}, apply));   // same time, higher id
  EXPECT_EQ(applied, 2);
  EXPECT_EQ(v.version_of("t"), (RetainedVersion{100, "n3"}));
  // Nothing known: anything is accepted, an unversioned snapshot entry too.
  EXPECT_TRUE(v.accept("fresh", RetainedVersion{0, ""}, apply));
  EXPECT_FALSE(v.version_of("never").has_value());
}

TEST(RetainedVersions, AClearedTopicIsForgottenAfterItsTombstoneLife) {
  RetainedVersions v{"n1", std::chrono::milliseconds(0)};
  v.accept("gone", RetainedVersion{100, "n2"}, [] {}, /*cleared=*/true);
  v.accept("kept", RetainedVersion{100, "n2"}, [] {});
  EXPECT_FALSE(v.version_of("gone").has_value()) << "forgotten at the next write";
  EXPECT_TRUE(v.version_of("kept").has_value()) << "a retained message keeps its version";
  // Cleared, then set again before the tombstone's time: the new version stays.
  v.accept("back", RetainedVersion{200, "n2"}, [] {}, /*cleared=*/true);
  v.accept("back", RetainedVersion{300, "n2"}, [] {});
  v.stamp("another", [] {});
  EXPECT_EQ(v.version_of("back"), (RetainedVersion{300, "n2"}));
  EXPECT_EQ(v.size(), 3u);  // kept, back, another
}

TEST(RetainedVersions, ATombstoneStillRefusesOlderWritesWithinItsLife) {
  RetainedVersions v{"n1"};
  EXPECT_TRUE(v.accept("t", RetainedVersion{200, "n2"}, [] {}, /*cleared=*/true));
  EXPECT_FALSE(v.accept("t", RetainedVersion{150, "n3"}, [] {})) << "an older write came back to life";
}

}  // namespace
}  // namespace starling::cluster
