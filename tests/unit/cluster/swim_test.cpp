#include "cluster/membership/swim.h"

#include <gtest/gtest.h>

#include <set>

namespace starling::cluster {
namespace {

using namespace std::chrono_literals;
using S = MemberState;

const Clock::time_point t0{};

SwimConfig config() {
  SwimConfig c;
  c.probe_interval = 1000ms;
  c.suspicion_timeout = 5000ms;
  c.indirect_probes = 2;
  c.gossip_per_message = 4;
  c.retransmit_multiplier = 2;
  c.dead_retention = 60000ms;
  return c;
}

MemberUpdate up(std::string id, uint64_t inc, S state) { return {id, id + ":7000", inc, state}; }

TEST(Swim, LearnsMembersFromGossipAndProbesEachOncePerRound) {
  Swim a("a", "a:7000", config(), 1, t0);
  EXPECT_FALSE(a.next_probe());  // alone
  std::vector<std::string> added;
  a.on_change = [&](const Member& m, std::optional<S> before) {
    EXPECT_FALSE(before);
    added.push_back(m.node_id);
  };
  EXPECT_EQ(a.apply({up("b", 0, S::alive), up("c", 0, S::alive), up("d", 0, S::suspect)}, t0), 3u);
  EXPECT_EQ(added, (std::vector<std::string>{"b", "c", "d"}));
  EXPECT_EQ(a.members().size(), 4u);
  for (int round = 0; round < 3; ++round) {
    std::multiset<std::string> probed;
    for (int i = 0; i < 3; ++i) probed.insert(a.next_probe()->node_id);
    EXPECT_EQ(probed, (std::multiset<std::string>{"b", "c", "d"})) << "round " << round;
  }
}

TEST(Swim, AFailedProbeMakesASuspectThatDiesAfterTheTimeout) {
  Swim a("a", "a:7000", config(), 1, t0);
  a.apply({up("b", 3, S::alive)}, t0);
  std::vector<std::pair<S, S>> changes;
  a.on_change = [&](const Member& m, std::optional<S> before) { changes.emplace_back(*before, m.state); };
  const auto probe = *a.next_probe();
  EXPECT_EQ(probe.node_id, "b");
  EXPECT_EQ(probe.address, "b:7000");
  a.probe_failed(probe, t0 + 1s);
  EXPECT_EQ(a.find("b")->state, S::suspect);
  EXPECT_EQ(a.find("b")->incarnation, 3u);
  a.tick(t0 + 5900ms);
  EXPECT_EQ(a.find("b")->state, S::suspect);
  a.tick(t0 + 6s);
  EXPECT_EQ(a.find("b")->state, S::dead);
  EXPECT_EQ(changes, (std::vector<std::pair<S, S>>{{S::alive, S::suspect}, {S::suspect, S::dead}}));
  EXPECT_FALSE(a.next_probe());  // the dead are not probed
  // Kept for a while, so late news is recognised as old, then forgotten.
  EXPECT_EQ(a.apply({up("b", 3, S::alive)}, t0 + 7s), 0u);
  a.tick(t0 + 66s);
  EXPECT_FALSE(a.find("b"));
}

TEST(Swim, ASuspectRefutesWithAHigherIncarnation) {
  Swim a("a", "a:7000", config(), 1, t0);
  Swim b("b", "b:7000", config(), 2, t0);
  a.apply(b.snapshot(), t0);
  a.probe_failed(*a.next_probe(), t0);
  ASSERT_EQ(a.find("b")->state, S::suspect);

  // b hears it is suspect (piggybacked on a's next message) and refutes.
  b.apply(a.gossip(), t0 + 1s);
  EXPECT_EQ(b.incarnation(), 1u);
  const auto news = b.gossip();
  EXPECT_NE(std::find(news.begin(), news.end(), MemberUpdate{"b", "b:7000", 1, S::alive}), news.end());
  a.apply(news, t0 + 1s);
  EXPECT_EQ(a.find("b")->state, S::alive);
  EXPECT_EQ(a.find("b")->incarnation, 1u);
  a.tick(t0 + 10s);
  EXPECT_EQ(a.find("b")->state, S::alive);  // no death: refuted
}

TEST(Swim, PrecedenceByIncarnationThenState) {
  Swim a("a", "a:7000", config(), 1, t0);
  a.apply({up("b", 2, S::alive)}, t0);
  EXPECT_EQ(a.apply({up("b", 1, S::suspect)}, t0), 0u);  // older
  EXPECT_EQ(a.apply({up("b", 2, S::suspect)}, t0), 1u);  // suspect beats alive at the same incarnation
  EXPECT_EQ(a.apply({up("b", 2, S::alive)}, t0), 0u);    // but not the other way round
  EXPECT_EQ(a.apply({up("b", 2, S::dead)}, t0), 1u);
  EXPECT_EQ(a.apply({up("b", 2, S::suspect)}, t0), 0u);
  EXPECT_EQ(a.apply({up("b", 3, S::alive)}, t0), 1u);    // back, refuted with a new life
  EXPECT_EQ(a.find("b")->state, S::alive);
  EXPECT_EQ(a.apply({up("c", 0, S::dead)}, t0), 0u);     // never known: not added dead
  EXPECT_FALSE(a.find("c"));
}

// A "dead" heard about a member alive here may be stale (the far side of a
// healed partition): it makes the member suspect, which it refutes, or is
// declared dead after the suspicion timeout.
TEST(Swim, HeardDeadOfALiveMemberIsSuspicionFirst) {
  Swim a("a", "a:7000", config(), 1, t0);
  a.apply({up("b", 2, S::alive), up("c", 2, S::alive)}, t0);
  EXPECT_EQ(a.apply({up("b", 2, S::dead), up("c", 2, S::dead)}, t0), 2u);
  EXPECT_EQ(a.find("b")->state, S::suspect);
  EXPECT_EQ(a.apply({up("b", 3, S::alive)}, t0 + std::chrono::seconds(1)), 1u);  // refuted
  a.tick(t0 + config().suspicion_timeout);
  EXPECT_EQ(a.find("b")->state, S::alive);
  EXPECT_EQ(a.find("c")->state, S::dead);
  // A suspect heard dead again (the same stale news, retransmitted) stays
  // suspect until its own timeout, counted from when it became suspect.
  const auto t1 = t0 + std::chrono::seconds(100);
  a.apply({up("b", 3, S::suspect)}, t1);
  a.apply({up("b", 3, S::dead)}, t1 + std::chrono::seconds(1));
  EXPECT_EQ(a.find("b")->state, S::suspect);
  a.tick(t1 + config().suspicion_timeout - std::chrono::milliseconds(1));
  EXPECT_EQ(a.find("b")->state, S::suspect);
  a.tick(t1 + config().suspicion_timeout);
  EXPECT_EQ(a.find("b")->state, S::dead);
}

TEST(Swim, ARestartedNodeGoesPastItsOldIncarnation) {
  Swim a("a", "a:7000", config(), 1, t0);
  EXPECT_EQ(a.apply({up("a", 5, S::alive)}, t0), 1u);  // what the cluster still knows of its last life
  EXPECT_EQ(a.incarnation(), 6u);
  EXPECT_EQ(a.apply({up("a", 6, S::dead)}, t0), 1u);
  EXPECT_EQ(a.incarnation(), 7u);
  EXPECT_EQ(a.find("a")->state, S::alive);
}

TEST(Swim, GossipSendsEachUpdateALimitedNumberOfTimesFewestFirst) {
  Swim a("a", "a:7000", config(), 1, t0);
  a.gossip();  // a's own "alive" from the start goes first
  for (const char* id : {"b", "c", "d", "e", "f", "g"}) a.apply({up(id, 0, S::alive)}, t0);
  std::map<std::string, int> sent;
  for (int i = 0; i < 20; ++i) {
    const auto batch = a.gossip();
    EXPECT_LE(batch.size(), 4u);
    for (const auto& u : batch) ++sent[u.node_id];
  }
  // 7 members: limit = 2 * ceil(log2(7 + 1)) = 6 sends each (a itself had
  // one already).
  for (const char* id : {"b", "c", "d", "e", "f", "g"}) EXPECT_EQ(sent[id], 6) << id;
  EXPECT_EQ(sent["a"], 5);
  EXPECT_TRUE(a.gossip().empty());
  // New news is sent afresh, ahead of nothing else waiting.
  a.apply({up("b", 0, S::suspect)}, t0);
  EXPECT_EQ(a.gossip(), (std::vector<MemberUpdate>{up("b", 0, S::suspect)}));
}

TEST(Swim, ALeavingNodeSaysSoAndIgnoresSuspicion) {
  Swim a("a", "a:7000", config(), 1, t0);
  Swim b("b", "b:7000", config(), 2, t0);
  b.apply(a.snapshot(), t0);
  a.leave(t0 + 1s);
  EXPECT_EQ(a.apply({up("a", 0, S::suspect)}, t0 + 1s), 0u);
  EXPECT_EQ(a.find("a")->state, S::left);
  b.apply(a.gossip(), t0 + 1s);
  EXPECT_EQ(b.find("a")->state, S::left);
  EXPECT_EQ(b.count(S::left), 1u);
  EXPECT_FALSE(b.next_probe());
}

TEST(Swim, IndirectHelpersAreAliveOthers) {
  Swim a("a", "a:7000", config(), 1, t0);
  a.apply({up("b", 0, S::alive), up("c", 0, S::alive), up("d", 0, S::suspect), up("e", 0, S::alive)}, t0);
  Swim::Probe probe{1, "b", "b:7000"};
  for (int i = 0; i < 20; ++i) {
    const auto helpers = a.indirect_helpers(probe);
    EXPECT_EQ(helpers.size(), 2u);
    for (const auto& h : helpers) {
      EXPECT_TRUE(h.node_id == "c" || h.node_id == "e") << h.node_id;
    }
  }
}

// Five nodes exchange pings and gossip in memory; one stops answering. Every
// other node declares it dead within a few probe rounds plus the suspicion
// timeout, and nobody else is ever suspected.
TEST(Swim, AClusterAgreesOnADeadMemberAndOnlyOnIt) {
  const std::vector<std::string> ids{"n0", "n1", "n2", "n3", "n4"};
  std::map<std::string, std::unique_ptr<Swim>> nodes;
  for (size_t i = 0; i < ids.size(); ++i) {
    nodes[ids[i]] = std::make_unique<Swim>(ids[i], ids[i] + ":7000", config(), 100 + i, t0);
  }
  for (auto& [id, n] : nodes) n->apply(nodes["n0"]->snapshot(), t0);  // join through n0
  for (auto& [id, n] : nodes) nodes["n0"]->apply(n->snapshot(), t0);
  for (auto& [id, n] : nodes) n->apply(nodes["n0"]->snapshot(), t0);
  bool wrongly_suspected = false;
  for (auto& [id, n] : nodes) {
    n->on_change = [&](const Member& m, std::optional<S>) {
      if (m.node_id != "n3" && m.state != S::alive) wrongly_suspected = true;
    };
  }
  std::set<std::string> down;
  Clock::time_point now = t0;
  const auto exchange = [&](Swim& from, Swim& to) {
    to.apply(from.gossip(), now);
    from.apply(to.gossip(), now);
  };
  std::optional<Clock::time_point> declared;
  for (int step = 1; step <= 40 && !declared; ++step) {
    now = t0 + std::chrono::seconds(step);
    if (step == 5) down.insert("n3");
    for (auto& [id, n] : nodes) {
      if (down.count(id)) continue;
      n->tick(now);
      auto probe = n->next_probe();
      if (!probe) continue;
      Swim& target = *nodes[probe->node_id];
      if (!down.count(probe->node_id)) {
        exchange(*n, target);
        n->probe_answered(*probe, target.incarnation(), now);
        continue;
      }
      // Asked to ping it for us, the helpers cannot reach it either; they
      // still exchange gossip with us.
      for (const auto& helper : n->indirect_helpers(*probe)) {
        if (!down.count(helper.node_id)) exchange(*n, *nodes[helper.node_id]);
      }
      n->probe_failed(*probe, now);
    }
    bool all = true;
    for (auto& [id, n] : nodes) {
      if (!down.count(id)) all = all && n->find("n3") && n->find("n3")->state == S::dead;
    }
    if (all) declared = now;
  }
  ASSERT_TRUE(declared) << "n3 was not declared dead by everyone within 40 s";
  // Stopped at 5 s; a probe round is at most 4 s here, then 5 s of suspicion,
  // then the news spreads.
  EXPECT_LE(*declared - (t0 + 5s), 15s);
  EXPECT_FALSE(wrongly_suspected);
  for (auto& [id, n] : nodes) {
    if (!down.count(id)) {
      EXPECT_EQ(n->count(S::alive), 4u) << id;
    }
  }
}

}  // namespace
}  // namespace starling::cluster
