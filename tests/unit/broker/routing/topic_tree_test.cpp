#include "broker/routing/topic_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "broker/mqtt/topic.h"

namespace starling::broker {
namespace {

using mqtt::QoS;
using mqtt::RetainHandling;

SubscriptionEntry entry(QoS qos = QoS::k0, uint32_t subscription_id = 0) {
  SubscriptionEntry e;
  e.options.qos = qos;
  e.subscription_id = subscription_id;
  return e;
}

mqtt::SharedFilter shared(std::string_view full) {
  auto split = mqtt::parse_shared_filter(full);
  EXPECT_TRUE(split.has_value()) << full;
  return split.value_or(mqtt::SharedFilter{});
}

struct Collector {
  std::vector<Subscriber> subscribers;
  std::vector<SharedGroup> groups;

  void on_subscriber(SubscriberId id, const SubscriptionEntry& e) { subscribers.push_back({id, e}); }
  void on_shared_group(const SharedGroup& group) { groups.push_back(group); }

  std::vector<uint64_t> ids() const {
    std::vector<uint64_t> out;
    for (const Subscriber& s : subscribers) out.push_back(static_cast<uint64_t>(s.id));
    std::sort(out.begin(), out.end());
    return out;
  }
  std::vector<std::string> group_names() const {
    std::vector<std::string> out;
    for (const SharedGroup& g : groups) out.push_back(g.name);
    std::sort(out.begin(), out.end());
    return out;
  }
};

Collector match(const TopicTree& tree, std::string_view topic) {
  Collector collector;
  tree.match(topic, collector);
  return collector;
}

// ---- One filter against one topic (spec 4.7) ----

struct MatchCase {
  const char* filter;
  const char* topic;
  bool matches;
};

std::ostream& operator<<(std::ostream& out, const MatchCase& c) {
  return out << '"' << c.filter << "\" vs \"" << c.topic << "\" -> " << (c.matches ? "match" : "no match");
}

class TopicMatch : public testing::TestWithParam<MatchCase> {};

TEST_P(TopicMatch, AsPlainSubscription) {
  const MatchCase& c = GetParam();
  ASSERT_TRUE(mqtt::validate_topic_filter(c.filter)) << c.filter;
  ASSERT_TRUE(mqtt::validate_topic_name(c.topic)) << c.topic;
  TopicTree tree;
  tree.subscribe(c.filter, SubscriberId{7}, entry(QoS::k1, 3));
  const Collector got = match(tree, c.topic);
  if (c.matches) {
    ASSERT_EQ(got.subscribers.size(), 1u);
    EXPECT_EQ(got.subscribers[0], (Subscriber{SubscriberId{7}, entry(QoS::k1, 3)}));
  } else {
    EXPECT_TRUE(got.subscribers.empty());
  }
  EXPECT_TRUE(got.groups.empty());
}

TEST_P(TopicMatch, AsSharedSubscription) {
  const MatchCase& c = GetParam();
  const std::string full = std::string("$share/workers/") + c.filter;
  ASSERT_TRUE(mqtt::validate_topic_filter(full)) << full;
  TopicTree tree;
  tree.subscribe(shared(full), SubscriberId{9}, entry());
  const Collector got = match(tree, c.topic);
  EXPECT_TRUE(got.subscribers.empty());
  if (c.matches) {
    ASSERT_EQ(got.groups.size(), 1u);
    EXPECT_EQ(got.groups[0].name, "workers");
    EXPECT_EQ(got.groups[0].members, (std::vector<Subscriber>{{SubscriberId{9}, entry()}}));
  } else {
    EXPECT_TRUE(got.groups.empty());
  }
}

// clang-format off
const MatchCase kMatchCases[] = {
    // 4.7.1.2: '#' is the parent and any number of child levels.
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/#", "sport", true},
    {"sport/tennis/#", "sport/tennis", true},
    {"sport/tennis/#", "sport", false},
    {"sport/tennis/#", "sport/tennisx", false},
    {"#", "sport/tennis", true},
    {"#", "a", true},
    {"#", "/", true},
    {"a/#", "b", false},
    {"a/#", "a/", true},
    {"+/#", "a", true},
    // 4.7.1.3: '+' is exactly one level, an empty one too.
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"+", "finance", true},
    {"+/tennis/#", "sport/tennis/player1", true},
    {"+/tennis/#", "sport/tennis", true},
    {"+/tennis/#", "sport/golf", false},
    {"+/+", "a", false},
    {"+/+/+", "a/b/c", true},
    {"+/+/+", "a/b/c/d", false},
    {"a/+/c", "a/b/c", true},
    {"a/+/c", "a/b/d", false},
    {"a/+/b", "a//b", true},
    {"+", "/", false},
    {"+/+", "/", true},
    // 4.7.2 [MQTT-4.7.2-1]: no filter starting with a wildcard matches a '$' topic.
    {"#", "$SYS/monitor/Clients", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"$SYS/#", "$SYS", true},
    {"+", "$SYS", false},
    {"#", "$", false},
    {"+/#", "$SYS/x", false},
    {"a/+", "a/$x", true},   // only the first level counts
    {"a/#", "a/$x/y", true},
    // 4.7.3: case sensitive, spaces allowed, a leading '/' is a distinct level, no normalisation.
    {"ACCOUNTS", "Accounts", false},
    {"Accounts payable", "Accounts payable", true},
    {"/finance", "finance", false},
    {"finance", "/finance", false},
    {"caf\xc3\xa9/+", "caf\xc3\xa9/x", true},
    {"caf\xc3\xa9", "cafe\xcc\x81", false},
    // Empty levels and exact filters.
    {"a//b", "a//b", true},
    {"a//b", "a/b", false},
    {"a/", "a/", true},
    {"a/", "a", false},
    {"a/+", "a/", true},
    {"/", "/", true},
    {"//#", "//", true},
    {"/#", "a", false},
    {"a/b/c", "a/b/c", true},
    {"a/b/c", "a/b", false},
    {"a/b", "a/b/c", false},
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Spec, TopicMatch, testing::ValuesIn(kMatchCases));

// ---- Several subscriptions in one tree ----

TEST(TopicTree, ReportsEveryMatchingFilterOfOneSubscriber) {
  TopicTree tree;
  EXPECT_TRUE(tree.subscribe("a/b", SubscriberId{1}, entry(QoS::k0, 1)));
  EXPECT_TRUE(tree.subscribe("a/+", SubscriberId{1}, entry(QoS::k1, 2)));
  EXPECT_TRUE(tree.subscribe("#", SubscriberId{1}, entry(QoS::k2, 3)));
  EXPECT_TRUE(tree.subscribe("a/b", SubscriberId{2}, entry()));
  EXPECT_EQ(tree.size(), 4u);
  // One report per filter: the router merges them ([MQTT-3.3.4-2], [MQTT-3.3.4-3]).
  const Collector got = match(tree, "a/b");
  EXPECT_EQ(got.ids(), (std::vector<uint64_t>{1, 1, 1, 2}));
  std::vector<uint32_t> identifiers;
  for (const Subscriber& s : got.subscribers) identifiers.push_back(s.entry.subscription_id);
  std::sort(identifiers.begin(), identifiers.end());
  EXPECT_EQ(identifiers, (std::vector<uint32_t>{0, 1, 2, 3}));
}

TEST(TopicTree, DollarTopicsOnlyMatchFiltersNamingTheirFirstLevel) {
  TopicTree tree;
  tree.subscribe("#", SubscriberId{1}, entry());
  tree.subscribe("+/broker/load", SubscriberId{2}, entry());
  tree.subscribe("$SYS/#", SubscriberId{3}, entry());
  tree.subscribe("$SYS/+/load", SubscriberId{4}, entry());
  tree.subscribe("$SYS/broker/load", SubscriberId{5}, entry());
  tree.subscribe(shared("$share/g/#"), SubscriberId{6}, entry());
  tree.subscribe(shared("$share/h/$SYS/#"), SubscriberId{7}, entry());
  Collector got = match(tree, "$SYS/broker/load");
  EXPECT_EQ(got.ids(), (std::vector<uint64_t>{3, 4, 5}));
  EXPECT_EQ(got.group_names(), (std::vector<std::string>{"h"}));
  // The same levels without the '$' are matched by all of them.
  got = match(tree, "SYS/broker/load");
  EXPECT_EQ(got.ids(), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(got.group_names(), (std::vector<std::string>{"g"}));
}

TEST(TopicTree, ResubscribingReplacesTheEntry) {
  TopicTree tree;
  EXPECT_TRUE(tree.subscribe("a/+", SubscriberId{1}, entry(QoS::k0)));
  const size_t nodes = tree.node_count();
  // [MQTT-3.8.4-3] the same filter again replaces, it does not add.
  SubscriptionEntry changed = entry(QoS::k2, 42);
  changed.options.no_local = true;
  changed.options.retain_as_published = true;
  changed.options.retain_handling = RetainHandling::kDoNotSend;
  EXPECT_FALSE(tree.subscribe("a/+", SubscriberId{1}, changed));
  EXPECT_EQ(tree.size(), 1u);
  EXPECT_EQ(tree.node_count(), nodes);
  Collector got = match(tree, "a/b");
  ASSERT_EQ(got.subscribers.size(), 1u);
  EXPECT_EQ(got.subscribers[0].entry, changed);

  EXPECT_TRUE(tree.subscribe(shared("$share/g/a/+"), SubscriberId{1}, entry(QoS::k0)));
  EXPECT_FALSE(tree.subscribe(shared("$share/g/a/+"), SubscriberId{1}, entry(QoS::k1)));
  EXPECT_EQ(tree.size(), 2u);
  got = match(tree, "a/b");
  ASSERT_EQ(got.groups.size(), 1u);
  EXPECT_EQ(got.groups[0].members, (std::vector<Subscriber>{{SubscriberId{1}, entry(QoS::k1)}}));
}

TEST(TopicTree, EntryStaysSmall) {
  EXPECT_EQ(sizeof(SubscriptionEntry), 8u);
  EXPECT_EQ(sizeof(Subscriber), 16u);
}

// ---- Shared groups ----

TEST(TopicTree, SharedGroupsOnOneFilterAreReportedApart) {
  TopicTree tree;
  tree.subscribe("jobs/+", SubscriberId{1}, entry());
  EXPECT_TRUE(tree.subscribe(shared("$share/alpha/jobs/+"), SubscriberId{2}, entry()));
  EXPECT_TRUE(tree.subscribe(shared("$share/alpha/jobs/+"), SubscriberId{3}, entry(QoS::k1)));
  EXPECT_TRUE(tree.subscribe(shared("$share/beta/jobs/+"), SubscriberId{2}, entry(QoS::k2)));
  EXPECT_EQ(tree.size(), 4u);

  Collector got = match(tree, "jobs/42");
  EXPECT_EQ(got.ids(), (std::vector<uint64_t>{1}));
  ASSERT_EQ(got.group_names(), (std::vector<std::string>{"alpha", "beta"}));
  std::map<std::string, SharedGroup> by_name;
  for (const SharedGroup& g : got.groups) by_name[g.name] = g;
  EXPECT_EQ(by_name["alpha"].members,
            (std::vector<Subscriber>{{SubscriberId{2}, entry()}, {SubscriberId{3}, entry(QoS::k1)}}));
  EXPECT_EQ(by_name["beta"].members, (std::vector<Subscriber>{{SubscriberId{2}, entry(QoS::k2)}}));
  const SharedGroupId alpha = by_name["alpha"].id;
  EXPECT_NE(alpha, by_name["beta"].id);

  // The handle is stable while the group lives, whatever its members do.
  EXPECT_TRUE(tree.subscribe(shared("$share/alpha/jobs/+"), SubscriberId{4}, entry()));
  EXPECT_TRUE(tree.unsubscribe(shared("$share/alpha/jobs/+"), SubscriberId{2}));
  got = match(tree, "jobs/42");
  ASSERT_EQ(got.groups.size(), 2u);
  for (const SharedGroup& g : got.groups) {
    if (g.name != "alpha") continue;
    EXPECT_EQ(g.id, alpha);
    // Join order is kept for the router's rotation.
    EXPECT_EQ(g.members, (std::vector<Subscriber>{{SubscriberId{3}, entry(QoS::k1)}, {SubscriberId{4}, entry()}}));
  }

  // A member of one group is not a member of another.
  EXPECT_FALSE(tree.unsubscribe(shared("$share/beta/jobs/+"), SubscriberId{3}));
  EXPECT_FALSE(tree.unsubscribe(shared("$share/gamma/jobs/+"), SubscriberId{3}));
  // A shared membership is not a plain subscription, nor the other way round.
  EXPECT_FALSE(tree.unsubscribe("jobs/+", SubscriberId{3}));
  EXPECT_FALSE(tree.unsubscribe(shared("$share/alpha/jobs/+"), SubscriberId{1}));

  // The group disappears with its last member; a new one gets a new handle.
  EXPECT_TRUE(tree.unsubscribe(shared("$share/alpha/jobs/+"), SubscriberId{3}));
  EXPECT_TRUE(tree.unsubscribe(shared("$share/alpha/jobs/+"), SubscriberId{4}));
  got = match(tree, "jobs/42");
  EXPECT_EQ(got.group_names(), (std::vector<std::string>{"beta"}));
  EXPECT_TRUE(tree.subscribe(shared("$share/alpha/jobs/+"), SubscriberId{5}, entry()));
  got = match(tree, "jobs/42");
  for (const SharedGroup& g : got.groups) {
    if (g.name == "alpha") {
      EXPECT_NE(g.id, alpha);
    }
  }
  EXPECT_EQ(tree.size(), 3u);
}

TEST(TopicTree, SameGroupNameOnTwoFiltersIsTwoGroups) {
  TopicTree tree;
  tree.subscribe(shared("$share/g/a/#"), SubscriberId{1}, entry());
  tree.subscribe(shared("$share/g/a/b"), SubscriberId{2}, entry());
  const Collector got = match(tree, "a/b");
  ASSERT_EQ(got.groups.size(), 2u);
  EXPECT_NE(got.groups[0].id, got.groups[1].id);
  EXPECT_EQ(got.groups[0].members.size() + got.groups[1].members.size(), 2u);
}

// ---- Unsubscribing ----

TEST(TopicTree, UnsubscribePrunesEmptyNodes) {
  TopicTree tree;
  EXPECT_EQ(tree.node_count(), 1u);
  const std::vector<std::string> filters = {"a/b/c", "a/b", "a/+/c", "a/#", "#", "+", "/", "a//b", "x/y/z/w"};
  for (size_t i = 0; i < filters.size(); ++i) {
    tree.subscribe(filters[i], SubscriberId{i}, entry());
    tree.subscribe(filters[i], SubscriberId{100 + i}, entry());
  }
  tree.subscribe(shared("$share/g/a/b/c"), SubscriberId{1}, entry());
  tree.subscribe(shared("$share/h/q/r"), SubscriberId{1}, entry());
  EXPECT_EQ(tree.size(), 2 * filters.size() + 2);

  // Removing what is not there changes nothing and makes no node.
  const size_t nodes = tree.node_count();
  EXPECT_FALSE(tree.unsubscribe("a/b/c/d", SubscriberId{0}));
  EXPECT_FALSE(tree.unsubscribe("a/b/c", SubscriberId{55}));
  EXPECT_FALSE(tree.unsubscribe(shared("$share/g/a/b"), SubscriberId{1}));
  EXPECT_EQ(tree.node_count(), nodes);

  // Removing a leaf keeps its still-used parents.
  EXPECT_TRUE(tree.unsubscribe("x/y/z/w", SubscriberId{8}));
  EXPECT_TRUE(tree.unsubscribe("x/y/z/w", SubscriberId{108}));
  EXPECT_FALSE(tree.unsubscribe("x/y/z/w", SubscriberId{8}));
  EXPECT_EQ(tree.node_count(), nodes - 4);

  for (size_t i = 0; i + 1 < filters.size(); ++i) {
    EXPECT_TRUE(tree.unsubscribe(filters[i], SubscriberId{i})) << filters[i];
    EXPECT_TRUE(tree.unsubscribe(filters[i], SubscriberId{100 + i})) << filters[i];
  }
  // The "a/b/c" node still holds a shared group.
  EXPECT_TRUE(match(tree, "a/b").subscribers.empty());
  EXPECT_EQ(match(tree, "a/b/c").groups.size(), 1u);
  EXPECT_TRUE(tree.unsubscribe(shared("$share/g/a/b/c"), SubscriberId{1}));
  EXPECT_TRUE(tree.unsubscribe(shared("$share/h/q/r"), SubscriberId{1}));
  EXPECT_EQ(tree.size(), 0u);
  EXPECT_EQ(tree.node_count(), 1u);
  const Collector got = match(tree, "a/b/c");
  EXPECT_TRUE(got.subscribers.empty());
  EXPECT_TRUE(got.groups.empty());
}

TEST(TopicTree, RemovedWildcardsStopMatching) {
  TopicTree tree;
  tree.subscribe("a/+", SubscriberId{1}, entry());
  tree.subscribe("a/#", SubscriberId{2}, entry());
  tree.subscribe("a/b", SubscriberId{3}, entry());
  EXPECT_EQ(match(tree, "a/b").ids(), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_TRUE(tree.unsubscribe("a/+", SubscriberId{1}));
  EXPECT_EQ(match(tree, "a/b").ids(), (std::vector<uint64_t>{2, 3}));
  EXPECT_TRUE(tree.unsubscribe("a/#", SubscriberId{2}));
  EXPECT_EQ(match(tree, "a/b").ids(), (std::vector<uint64_t>{3}));
  EXPECT_TRUE(match(tree, "a").subscribers.empty());
  // A subscription again after pruning finds its way back.
  tree.subscribe("a/+", SubscriberId{4}, entry());
  EXPECT_EQ(match(tree, "a/b").ids(), (std::vector<uint64_t>{3, 4}));
}

TEST(TopicTree, ManySubscribersOnOneFilter) {
  // Long enough for the subscriber index to come and go.
  TopicTree tree;
  constexpr uint64_t kCount = 1000;
  for (uint64_t i = 0; i < kCount; ++i) EXPECT_TRUE(tree.subscribe("broadcast/#", SubscriberId{i}, entry()));
  for (uint64_t i = 0; i < kCount; i += 3) {
    EXPECT_FALSE(tree.subscribe("broadcast/#", SubscriberId{i}, entry(QoS::k1, static_cast<uint32_t>(i + 1))));
  }
  EXPECT_EQ(tree.size(), kCount);
  for (uint64_t i = 0; i < kCount; i += 2) EXPECT_TRUE(tree.unsubscribe("broadcast/#", SubscriberId{i}));
  for (uint64_t i = 0; i < kCount; i += 2) EXPECT_FALSE(tree.unsubscribe("broadcast/#", SubscriberId{i}));
  Collector got = match(tree, "broadcast/now");
  ASSERT_EQ(got.subscribers.size(), kCount / 2);
  for (const Subscriber& s : got.subscribers) {
    const uint64_t i = static_cast<uint64_t>(s.id);
    EXPECT_EQ(i % 2, 1u);
    EXPECT_EQ(s.entry, i % 3 == 0 ? entry(QoS::k1, static_cast<uint32_t>(i + 1)) : entry());
  }
  // Down to a few, back up, then empty.
  for (uint64_t i = 1; i < kCount - 10; i += 2) EXPECT_TRUE(tree.unsubscribe("broadcast/#", SubscriberId{i}));
  EXPECT_EQ(match(tree, "broadcast").ids(), (std::vector<uint64_t>{991, 993, 995, 997, 999}));
  for (uint64_t i = 2000; i < 2100; ++i) EXPECT_TRUE(tree.subscribe("broadcast/#", SubscriberId{i}, entry()));
  EXPECT_FALSE(tree.subscribe("broadcast/#", SubscriberId{2050}, entry()));
  EXPECT_EQ(tree.size(), 105u);
  for (uint64_t i = 2000; i < 2100; ++i) EXPECT_TRUE(tree.unsubscribe("broadcast/#", SubscriberId{i}));
  for (uint64_t i = 991; i < kCount; i += 2) EXPECT_TRUE(tree.unsubscribe("broadcast/#", SubscriberId{i}));
  EXPECT_EQ(tree.size(), 0u);
  EXPECT_EQ(tree.node_count(), 1u);
}

TEST(TopicTree, WideFanOutUnderOneLevel) {
  // Enough children to grow and shrink the node table several times.
  TopicTree tree;
  constexpr uint64_t kCount = 20000;
  for (uint64_t i = 0; i < kCount; ++i) {
    tree.subscribe("dev/" + std::to_string(i) + "/cmd", SubscriberId{i}, entry());
  }
  EXPECT_EQ(tree.node_count(), 2 + 2 * kCount);
  for (uint64_t i = 0; i < kCount; i += 97) {
    EXPECT_EQ(match(tree, "dev/" + std::to_string(i) + "/cmd").ids(), (std::vector<uint64_t>{i}));
  }
  EXPECT_TRUE(match(tree, "dev/" + std::to_string(kCount) + "/cmd").subscribers.empty());
  for (uint64_t i = 0; i < kCount; ++i) {
    ASSERT_TRUE(tree.unsubscribe("dev/" + std::to_string(i) + "/cmd", SubscriberId{i}));
    if (i % 1000 == 999 && i + 1 < kCount) {
      const uint64_t next = i + 1;
      ASSERT_EQ(match(tree, "dev/" + std::to_string(next) + "/cmd").ids(), (std::vector<uint64_t>{next}));
    }
  }
  EXPECT_EQ(tree.node_count(), 1u);
}

// ---- Against a brute-force matcher ----

std::vector<std::string_view> split_levels(std::string_view text) {
  std::vector<std::string_view> levels;
  size_t start = 0;
  for (;;) {
    const size_t slash = text.find('/', start);
    if (slash == std::string_view::npos) {
      levels.push_back(text.substr(start));
      return levels;
    }
    levels.push_back(text.substr(start, slash - start));
    start = slash + 1;
  }
}

// Spec 4.7 read literally, one level at a time.
bool brute_matches(const std::vector<std::string_view>& filter, const std::vector<std::string_view>& topic) {
  if (topic[0].starts_with('$') && (filter[0] == "+" || filter[0] == "#")) return false;
  for (size_t i = 0; i < filter.size(); ++i) {
    if (filter[i] == "#") return true;
    if (i >= topic.size()) return false;
    if (filter[i] != "+" && filter[i] != topic[i]) return false;
  }
  return filter.size() == topic.size();
}

struct RandomSubscription {
  std::string filter;  // without $share
  std::string group;   // empty for a plain subscription
  std::vector<std::string_view> levels;
  bool live = true;
};

TEST(TopicTree, AgreesWithBruteForceOnRandomFiltersAndTopics) {
  std::mt19937 rng(20240607);
  auto pick = [&](std::initializer_list<const char*> choices) {
    return std::string(*(choices.begin() + std::uniform_int_distribution<size_t>(0, choices.size() - 1)(rng)));
  };
  auto random_levels = [&](size_t max_levels, bool wildcards) {
    const size_t count = std::uniform_int_distribution<size_t>(1, max_levels)(rng);
    std::string text;
    for (size_t i = 0; i < count; ++i) {
      if (i > 0) text += '/';
      if (i == 0 && rng() % 6 == 0) {
        text += "$s";
      } else if (wildcards && i + 1 == count && rng() % 5 == 0) {
        text += '#';
      } else {
        text += wildcards ? pick({"a", "b", "c", "", "+", "+"}) : pick({"a", "b", "c", ""});
      }
    }
    return text;
  };

  std::vector<RandomSubscription> subscriptions;
  while (subscriptions.size() < 2000) {
    RandomSubscription s;
    s.filter = random_levels(4, true);
    if (!mqtt::validate_topic_filter(s.filter)) continue;  // "" is not a filter
    if (rng() % 4 == 0) s.group = pick({"g1", "g2", "g3"});
    subscriptions.push_back(std::move(s));
  }
  std::vector<std::string> topics;
  while (topics.size() < 2000) {
    std::string topic = random_levels(5, false);
    if (mqtt::validate_topic_name(topic)) topics.push_back(std::move(topic));
  }

  TopicTree tree;
  for (size_t i = 0; i < subscriptions.size(); ++i) {
    RandomSubscription& s = subscriptions[i];
    s.levels = split_levels(s.filter);
    const bool added = s.group.empty()
                           ? tree.subscribe(s.filter, SubscriberId{i}, entry())
                           : tree.subscribe(mqtt::SharedFilter{s.group, s.filter}, SubscriberId{i}, entry());
    ASSERT_TRUE(added);
  }

  size_t reported = 0;
  auto compare_all = [&] {
    for (const std::string& topic : topics) {
      const std::vector<std::string_view> topic_levels = split_levels(topic);
      std::vector<uint64_t> want_plain, want_shared;
      for (size_t i = 0; i < subscriptions.size(); ++i) {
        const RandomSubscription& s = subscriptions[i];
        if (!s.live || !brute_matches(s.levels, topic_levels)) continue;
        (s.group.empty() ? want_plain : want_shared).push_back(i);
      }
      const Collector got = match(tree, topic);
      std::vector<uint64_t> got_shared;
      for (const SharedGroup& g : got.groups) {
        EXPECT_FALSE(g.members.empty());
        for (const Subscriber& m : g.members) got_shared.push_back(static_cast<uint64_t>(m.id));
      }
      std::sort(got_shared.begin(), got_shared.end());
      ASSERT_EQ(got.ids(), want_plain) << topic;
      ASSERT_EQ(got_shared, want_shared) << topic;
      reported += want_plain.size() + want_shared.size();
    }
  };
  compare_all();
  // The alphabet is small on purpose: plenty of topics match something.
  EXPECT_GT(reported, topics.size());

  size_t live = subscriptions.size();
  for (size_t i = 0; i < subscriptions.size(); ++i) {
    if (rng() % 2 == 0) continue;
    RandomSubscription& s = subscriptions[i];
    const bool removed = s.group.empty() ? tree.unsubscribe(s.filter, SubscriberId{i})
                                         : tree.unsubscribe(mqtt::SharedFilter{s.group, s.filter}, SubscriberId{i});
    ASSERT_TRUE(removed) << s.filter;
    s.live = false;
    --live;
  }
  EXPECT_EQ(tree.size(), live);
  compare_all();

  for (size_t i = 0; i < subscriptions.size(); ++i) {
    RandomSubscription& s = subscriptions[i];
    const bool removed = s.group.empty() ? tree.unsubscribe(s.filter, SubscriberId{i})
                                         : tree.unsubscribe(mqtt::SharedFilter{s.group, s.filter}, SubscriberId{i});
    EXPECT_EQ(removed, s.live) << s.filter;
  }
  EXPECT_EQ(tree.size(), 0u);
  EXPECT_EQ(tree.node_count(), 1u);
}

}  // namespace
}  // namespace starling::broker
