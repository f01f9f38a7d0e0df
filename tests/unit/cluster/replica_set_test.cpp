// Rendezvous hashing of a session's replicas: the same answer everywhere,
// and little movement when a member joins or leaves.
#include "cluster/replication/replica_set.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace starling::cluster {
namespace {

const std::vector<std::string> kFive{"n1", "n2", "n3", "n4", "n5"};

TEST(ReplicaSet, SameAnswerWhateverTheMemberOrder) {
  std::vector<std::string> shuffled{"n4", "n1", "n5", "n3", "n2"};
  for (int i = 0; i < 200; ++i) {
    const std::string client = "client-" + std::to_string(i);
    EXPECT_EQ(pick_replicas(client, kFive, "n1", 2), pick_replicas(client, shuffled, "n1", 2)) << client;
  }
}

TEST(ReplicaSet, NeverTheOwnerNeverTwiceAtMostCount) {
  const auto replicas = pick_replicas("c", kFive, "n3", 2);
  ASSERT_EQ(replicas.size(), 2u);
  EXPECT_NE(replicas[0], replicas[1]);
  for (const auto& r : replicas) EXPECT_NE(r, "n3");
  EXPECT_EQ(pick_replicas("c", std::vector<std::string>{"n1", "n1"}, "n2", 3), std::vector<std::string>{"n1"});
  EXPECT_TRUE(pick_replicas("c", std::vector<std::string>{"n1"}, "n1", 1).empty());
}

TEST(ReplicaSet, SpreadsSessionsOverMembers) {
  std::map<std::string, int> firsts;
  for (int i = 0; i < 5000; ++i) ++firsts[pick_replicas("c" + std::to_string(i), kFive, "none", 1).at(0)];
  ASSERT_EQ(firsts.size(), 5u);
  for (const auto& [node, n] : firsts) EXPECT_NEAR(n, 1000, 150) << node;
}

// A sixth member takes about a sixth of the replica slots; the other
// sessions keep theirs.
TEST(ReplicaSet, AJoiningMemberMovesOnlyWhatItWins) {
  std::vector<std::string> six = kFive;
  six.push_back("n6");
  int moved = 0;
  const int sessions = 3000;
  for (int i = 0; i < sessions; ++i) {
    const std::string client = "c" + std::to_string(i);
    const auto before = pick_replicas(client, kFive, "none", 1).at(0);
    const auto after = pick_replicas(client, six, "none", 1).at(0);
    if (before != after) {
      ++moved;
      EXPECT_EQ(after, "n6") << client << " moved between old members";
    }
  }
  EXPECT_NEAR(moved, sessions / 6, sessions / 20);
}

TEST(ReplicaSet, TheAdopterIsTheBestLiveReplica) {
  const auto replicas = pick_replicas("c", kFive, "n1", 2);
  ASSERT_EQ(replicas.size(), 2u);
  EXPECT_EQ(pick_adopter("c", replicas, kFive), replicas[0]);
  const std::vector<std::string> without_first{"n1", replicas[1]};
  EXPECT_EQ(pick_adopter("c", replicas, without_first), replicas[1]);
  EXPECT_EQ(pick_adopter("c", replicas, std::vector<std::string>{"n1"}), std::nullopt);
}

}  // namespace
}  // namespace starling::cluster
