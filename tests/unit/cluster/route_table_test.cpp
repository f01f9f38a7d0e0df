#include "cluster/routing/route_table.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace starling::cluster {
namespace {

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::string> nodes(const RouteTable& t, std::string_view topic) {
  const auto n = t.matching(topic).nodes;
  return sorted({n.begin(), n.end()});
}

TEST(RouteTable, LocalRoutesAreCountedAndVersioned) {
  RouteTable t{7};
  t.add_local("a/#");
  t.add_local("a/#");  // a second session: no change
  t.add_local("b/+");
  EXPECT_EQ(t.local_count(), 2u);
  EXPECT_EQ(t.local_version(), (RouteVersion{7, 2}));
  t.remove_local("a/#");
  EXPECT_EQ(t.local_version(), (RouteVersion{7, 2}));  // one session still has it
  t.remove_local("a/#");
  t.remove_local("never");
  EXPECT_EQ(t.local_version(), (RouteVersion{7, 3}));
  EXPECT_EQ(t.local_count(), 1u);
}

TEST(RouteTable, DeltaSinceAKnownVersionSaysEachFiltersLastState) {
  RouteTable t{7};
  t.add_local("a");
  const RouteVersion v1 = t.local_version();
  t.add_local("b");
  t.add_local("c");
  t.remove_local("b");
  t.remove_local("a");
  const RouteDelta d = t.delta_since(v1);
  EXPECT_FALSE(d.snapshot);
  EXPECT_EQ(d.from_version, 1u);
  EXPECT_EQ(d.to_version, 5u);
  EXPECT_EQ(sorted(d.added), (std::vector<std::string>{"c"}));
  EXPECT_EQ(sorted(d.removed), (std::vector<std::string>{"a", "b"}));
}

TEST(RouteTable, ASnapshotWhenThePeerKnowsNothingAnotherEpochOrTooOld) {
  RouteTable t{7, /*max_log=*/2};
  t.add_local("a");
  t.add_local("b");
  t.add_local("c");  // the log keeps versions 2 and 3 only
  for (const auto& known : {std::optional<RouteVersion>{}, std::optional<RouteVersion>{RouteVersion{6, 3}},
                            std::optional<RouteVersion>{RouteVersion{7, 0}}}) {
    const RouteDelta d = t.delta_since(known);
    EXPECT_TRUE(d.snapshot);
    EXPECT_EQ(sorted(d.added), (std::vector<std::string>{"a", "b", "c"}));
  }
  EXPECT_FALSE(t.delta_since(RouteVersion{7, 1}).snapshot);
  t.trim(2);
  EXPECT_TRUE(t.delta_since(RouteVersion{7, 1}).snapshot);
  EXPECT_FALSE(t.delta_since(RouteVersion{7, 2}).snapshot);
}

TEST(RouteTable, RemoteRoutesMatchByNodeEachOnce) {
  RouteTable t{1};
  ASSERT_EQ(t.apply("n2", RouteDelta{5, 0, 2, true, {"s/+/t", "s/#"}, {}}), RouteTable::Applied::kApplied);
  ASSERT_EQ(t.apply("n3", RouteDelta{9, 0, 1, true, {"s/a/t"}, {}}), RouteTable::Applied::kApplied);
  EXPECT_EQ(nodes(t, "s/a/t"), (std::vector<std::string>{"n2", "n3"}));
  EXPECT_EQ(nodes(t, "s/b"), (std::vector<std::string>{"n2"}));
  EXPECT_EQ(nodes(t, "x"), (std::vector<std::string>{}));
  EXPECT_EQ(t.remote_count(), 3u);
  t.drop("n2");
  EXPECT_EQ(nodes(t, "s/a/t"), (std::vector<std::string>{"n3"}));
  EXPECT_EQ(t.remote_count(), 1u);
  EXPECT_FALSE(t.version_of("n2").has_value());
}

TEST(RouteTable, ADeltaNeedsWhatItStartsFromAndARepeatChangesNothing) {
  RouteTable t{1};
  // Nothing from n2 yet, or another epoch: a snapshot is needed.
  EXPECT_EQ(t.apply("n2", RouteDelta{5, 3, 4, false, {"a"}, {}}), RouteTable::Applied::kNeedSnapshot);
  ASSERT_EQ(t.apply("n2", RouteDelta{5, 0, 3, true, {"a", "b"}, {}}), RouteTable::Applied::kApplied);
  EXPECT_EQ(t.apply("n2", RouteDelta{6, 3, 4, false, {"c"}, {}}), RouteTable::Applied::kNeedSnapshot);
  // A gap (version 4 missed): a snapshot.
  EXPECT_EQ(t.apply("n2", RouteDelta{5, 4, 5, false, {"c"}, {}}), RouteTable::Applied::kNeedSnapshot);
  ASSERT_EQ(t.apply("n2", RouteDelta{5, 3, 5, false, {"c"}, {"a"}}), RouteTable::Applied::kApplied);
  EXPECT_EQ(t.version_of("n2"), (RouteVersion{5, 5}));
  // The same delta again (its answer was lost): no change.
  ASSERT_EQ(t.apply("n2", RouteDelta{5, 3, 5, false, {"c"}, {"a"}}), RouteTable::Applied::kApplied);
  EXPECT_EQ(nodes(t, "a"), (std::vector<std::string>{}));
  EXPECT_EQ(nodes(t, "b"), (std::vector<std::string>{"n2"}));
  EXPECT_EQ(nodes(t, "c"), (std::vector<std::string>{"n2"}));
  // A snapshot replaces everything.
  ASSERT_EQ(t.apply("n2", RouteDelta{8, 0, 1, true, {"d"}, {}}), RouteTable::Applied::kApplied);
  EXPECT_EQ(nodes(t, "b"), (std::vector<std::string>{}));
  EXPECT_EQ(nodes(t, "d"), (std::vector<std::string>{"n2"}));
  EXPECT_EQ(t.remote_count(), 1u);
}

TEST(RouteTable, SharedGroupsMatchWithTheNodesThatHaveMembers) {
  RouteTable t{1};
  t.add_local("$share/g/s/#");
  EXPECT_TRUE(t.has_local("$share/g/s/#"));
  EXPECT_FALSE(t.has_local("$share/h/s/#"));
  ASSERT_EQ(t.apply("n2", RouteDelta{5, 0, 1, true, {"$share/g/s/#", "$share/h/s/+"}, {}}),
            RouteTable::Applied::kApplied);
  ASSERT_EQ(t.apply("n3", RouteDelta{6, 0, 1, true, {"$share/g/s/#"}, {}}), RouteTable::Applied::kApplied);
  auto groups = t.matching("s/x").groups;
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.filter < b.filter; });
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].filter, "$share/g/s/#");
  EXPECT_EQ(sorted({groups[0].nodes.begin(), groups[0].nodes.end()}), (std::vector<std::string>{"n2", "n3"}));
  EXPECT_EQ(groups[1].filter, "$share/h/s/+");
  EXPECT_EQ(nodes(t, "s/x"), (std::vector<std::string>{}));  // no plain route
  t.drop("n2");
  groups = t.matching("s/x").groups;
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(sorted({groups[0].nodes.begin(), groups[0].nodes.end()}), (std::vector<std::string>{"n3"}));
}

TEST(RouteTable, APeersGarbageFilterIsIgnored) {
  RouteTable t{1};
  ASSERT_EQ(t.apply("n2", RouteDelta{5, 0, 1, true, {"a/#/b", "", "ok/+", "x+"}, {}}),
            RouteTable::Applied::kApplied);
  EXPECT_EQ(t.remote_count(), 1u);
  EXPECT_EQ(nodes(t, "ok/1"), (std::vector<std::string>{"n2"}));
}

}  // namespace
}  // namespace starling::cluster
