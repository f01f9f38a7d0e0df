#include "broker/routing/topic_tree.h"

#include <algorithm>
#include <cassert>
#include <functional>
#include <utility>

namespace starling::broker {
namespace {

constexpr size_t kEnd = std::string_view::npos;
constexpr size_t kNone = static_cast<size_t>(-1);
constexpr std::string_view kPlus = "+";
constexpr std::string_view kHash = "#";

// A plain subscriber list this long gets a hash index, so that many clients
// subscribing to one filter ("$SYS/#", a broadcast topic) is not quadratic.
// It is dropped again below half this.
constexpr size_t kIndexFrom = 32;

constexpr size_t kMinSlots = 16;

// One level of a topic or filter: the text from pos to the next '/', and where
// the level after it starts (kEnd after the last). Levels may be empty.
struct Level {
  std::string_view name;
  size_t next;
};

Level level_at(std::string_view text, size_t pos) {
  const size_t slash = text.find('/', pos);
  if (slash == kEnd) return {text.substr(pos), kEnd};
  return {text.substr(pos, slash - pos), slash + 1};
}

uint64_t hash_edge(const void* parent, std::string_view level) {
  uint64_t h = std::hash<std::string_view>{}(level) ^
               (reinterpret_cast<uintptr_t>(parent) * 0x9E3779B97F4A7C15ULL);
  // Murmur3's finaliser: the slot comes from the low bits, the tag from the high.
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h;
}

uint16_t tag_of(uint64_t hash) { return static_cast<uint16_t>(hash >> 48) | 0x8000; }

size_t find_position(const std::vector<Subscriber>& list,
                     const std::unordered_map<SubscriberId, uint32_t>* index, SubscriberId id) {
  if (index != nullptr && !index->empty()) {
    const auto it = index->find(id);
    return it == index->end() ? kNone : it->second;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].id == id) return i;
  }
  return kNone;
}

}  // namespace

// 72 bytes: most nodes are interior or hold one subscriber, so everything rare
// lives in NodeExtra and children live in the NodeTable.
struct TopicTree::Node {
  Node(Node* parent_node, std::string_view name) : parent(parent_node), level(name) {}

  bool unused() const { return subscribers.empty() && child_count == 0 && !has_extra; }

  Node* const parent;                   // null for the root
  const std::string level;              // levels up to 15 bytes stay in the string itself
  std::vector<Subscriber> subscribers;  // plain subscriptions whose filter ends here
  uint32_t child_count = 0;             // so pruning knows when the last child went
  bool has_plus_child = false;
  bool has_hash_child = false;
  bool has_extra = false;  // has an entry in extras_
};

struct TopicTree::NodeExtra {
  std::vector<SharedGroup> groups;
  // id -> index in Node::subscribers; empty while the list is short.
  std::unordered_map<SubscriberId, uint32_t> positions;
};

// ---- NodeTable ----

TopicTree::NodeTable::NodeTable() = default;
TopicTree::NodeTable::~NodeTable() = default;

TopicTree::Node* TopicTree::NodeTable::find(const Node* parent, std::string_view level) const {
  if (size_ == 0) return nullptr;
  const uint64_t hash = hash_edge(parent, level);
  const uint16_t tag = tag_of(hash);
  const size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    if (tags_[i] == 0) return nullptr;
    if (tags_[i] == tag) {
      Node* node = slots_[i].get();
      if (node->parent == parent && node->level == level) return node;
    }
  }
}

TopicTree::Node* TopicTree::NodeTable::insert(std::unique_ptr<Node> node) {
  // Grow at 80% full: with the tags a long probe run costs a few bytes read,
  // not a node visited per step.
  if ((size_ + 1) * 5 > slots_.size() * 4) rehash(std::max(kMinSlots, slots_.size() * 2));
  Node* placed = node.get();
  place(std::move(node));
  ++size_;
  return placed;
}

void TopicTree::NodeTable::erase(const Node* node) {
  const size_t mask = slots_.size() - 1;
  size_t hole = hash_edge(node->parent, node->level) & mask;
  while (slots_[hole].get() != node) hole = (hole + 1) & mask;
  slots_[hole].reset();
  tags_[hole] = 0;
  --size_;
  // Backward shift rather than tombstones: the rest of the probe run moves up
  // into the hole, so no find stops early and no slot is lost to a marker.
  for (size_t i = (hole + 1) & mask; tags_[i] != 0; i = (i + 1) & mask) {
    const size_t home = hash_edge(slots_[i]->parent, slots_[i]->level) & mask;
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      slots_[hole] = std::move(slots_[i]);
      tags_[hole] = tags_[i];
      tags_[i] = 0;
      hole = i;
    }
  }
  // Give memory back as the tree empties.
  if (size_ == 0) {
    slots_ = std::vector<std::unique_ptr<Node>>();
    tags_ = std::vector<uint16_t>();
  } else if (slots_.size() > kMinSlots && size_ * 8 < slots_.size()) {
    rehash(slots_.size() / 2);
  }
}

void TopicTree::NodeTable::rehash(size_t slot_count) {
  std::vector<std::unique_ptr<Node>> old = std::exchange(slots_, std::vector<std::unique_ptr<Node>>(slot_count));
  tags_ = std::vector<uint16_t>(slot_count);
  for (std::unique_ptr<Node>& node : old) {
    if (node) place(std::move(node));
  }
}

void TopicTree::NodeTable::place(std::unique_ptr<Node> node) {
  const uint64_t hash = hash_edge(node->parent, node->level);
  const size_t mask = slots_.size() - 1;
  size_t i = hash & mask;
  while (tags_[i] != 0) i = (i + 1) & mask;
  tags_[i] = tag_of(hash);
  slots_[i] = std::move(node);
}

// ---- TopicTree ----

TopicTree::TopicTree() : root_(std::make_unique<Node>(nullptr, std::string_view{})) {}

TopicTree::~TopicTree() = default;

bool TopicTree::subscribe(std::string_view filter, SubscriberId id, const SubscriptionEntry& entry) {
  assert(!mqtt::parse_shared_filter(filter) && "split $share filters with parse_shared_filter");
  Node* node = find_or_make_node(filter);
  NodeExtra* extra = extra_of(node);
  std::vector<Subscriber>& list = node->subscribers;
  const size_t pos = find_position(list, extra ? &extra->positions : nullptr, id);
  if (pos != kNone) {
    list[pos].entry = entry;  // [MQTT-3.8.4-3] replaces the existing subscription
    return false;
  }
  list.push_back({id, entry});
  ++subscriptions_;
  if (extra != nullptr && !extra->positions.empty()) {
    extra->positions.emplace(id, static_cast<uint32_t>(list.size() - 1));
  } else if (list.size() >= kIndexFrom) {
    auto& positions = make_extra(node).positions;
    for (size_t i = 0; i < list.size(); ++i) positions.emplace(list[i].id, static_cast<uint32_t>(i));
  }
  return true;
}

bool TopicTree::subscribe(const mqtt::SharedFilter& shared, SubscriberId id, const SubscriptionEntry& entry) {
  Node* node = find_or_make_node(shared.filter);
  std::vector<SharedGroup>& groups = make_extra(node).groups;
  auto group = std::find_if(groups.begin(), groups.end(),
                            [&](const SharedGroup& g) { return g.name == shared.group; });
  if (group == groups.end()) {
    groups.push_back(
        SharedGroup{SharedGroupId{next_group_id_++}, std::string(shared.group), {}, std::string(shared.filter)});
    ++groups_;
    group = groups.end() - 1;
  }
  // Groups are expected to be small (workers of one service): a linear search.
  std::vector<Subscriber>& members = group->members;
  auto member = std::find_if(members.begin(), members.end(), [&](const Subscriber& s) { return s.id == id; });
  if (member != members.end()) {
    member->entry = entry;
    return false;
  }
  members.push_back({id, entry});
  ++subscriptions_;
  return true;
}

bool TopicTree::unsubscribe(std::string_view filter, SubscriberId id) {
  Node* node = find_node(filter);
  if (node == nullptr) return false;
  NodeExtra* extra = extra_of(node);
  std::vector<Subscriber>& list = node->subscribers;
  const size_t pos = find_position(list, extra ? &extra->positions : nullptr, id);
  if (pos == kNone) return false;
  // Plain subscribers have no order: the last one takes the freed place.
  list[pos] = list.back();
  list.pop_back();
  --subscriptions_;
  if (extra != nullptr && !extra->positions.empty()) {
    extra->positions.erase(id);
    if (pos < list.size()) extra->positions[list[pos].id] = static_cast<uint32_t>(pos);
    if (list.size() < kIndexFrom / 2) {
      extra->positions = std::unordered_map<SubscriberId, uint32_t>();
      drop_extra_if_unused(node);
    }
  }
  if (list.size() * 4 <= list.capacity()) list.shrink_to_fit();
  prune(node);
  return true;
}

bool TopicTree::unsubscribe(const mqtt::SharedFilter& shared, SubscriberId id) {
  Node* node = find_node(shared.filter);
  if (node == nullptr) return false;
  NodeExtra* extra = extra_of(node);
  if (extra == nullptr) return false;
  std::vector<SharedGroup>& groups = extra->groups;
  auto group = std::find_if(groups.begin(), groups.end(),
                            [&](const SharedGroup& g) { return g.name == shared.group; });
  if (group == groups.end()) return false;
  std::vector<Subscriber>& members = group->members;
  auto member = std::find_if(members.begin(), members.end(), [&](const Subscriber& s) { return s.id == id; });
  if (member == members.end()) return false;
  members.erase(member);  // keeps join order, which a router's rotation follows
  --subscriptions_;
  if (members.empty()) {
    groups.erase(group);
    --groups_;
  }
  drop_extra_if_unused(node);
  prune(node);
  return true;
}

void TopicTree::match_impl(std::string_view topic, const Sink& sink) const {
  if (!topic.empty() && topic.front() == '$') {
    // [MQTT-4.7.2-1] Filters starting with '+' or '#' do not match a topic
    // starting with '$': only the root's exact child can.
    const Level first = level_at(topic, 0);
    if (const Node* child = nodes_.find(root_.get(), first.name)) match_from(child, topic, first.next, sink);
    return;
  }
  match_from(root_.get(), topic, 0, sink);
}

// Matches the levels of topic from pos (kEnd: none left) against the filters
// below node. Exact children are followed in the loop and only '+' recurses,
// so the stack grows with the '+' levels of the filters, not the topic's depth.
void TopicTree::match_from(const Node* node, std::string_view topic, size_t pos, const Sink& sink) const {
  for (;;) {
    // '#' matches whatever is left, also nothing: it stands for the parent
    // level too, so "a/#" matches "a" (spec 4.7.1.2).
    if (node->has_hash_child) report(nodes_.find(node, kHash), sink);
    if (pos == kEnd) {
      report(node, sink);
      return;
    }
    const Level level = level_at(topic, pos);
    // '+' matches exactly one level, an empty one too (spec 4.7.1.3).
    if (node->has_plus_child) match_from(nodes_.find(node, kPlus), topic, level.next, sink);
    node = nodes_.find(node, level.name);
    if (node == nullptr) return;
    pos = level.next;
  }
}

void TopicTree::report(const Node* node, const Sink& sink) const {
  for (const Subscriber& subscriber : node->subscribers) sink.on_subscriber(sink.visitor, subscriber);
  if (const NodeExtra* extra = extra_of(node)) {
    for (const SharedGroup& group : extra->groups) sink.on_shared_group(sink.visitor, group);
  }
}

TopicTree::Node* TopicTree::find_node(std::string_view filter) const {
  Node* node = root_.get();
  for (size_t pos = 0; node != nullptr && pos != kEnd;) {
    const Level level = level_at(filter, pos);
    node = nodes_.find(node, level.name);
    pos = level.next;
  }
  return node;
}

TopicTree::Node* TopicTree::find_or_make_node(std::string_view filter) {
  Node* node = root_.get();
  for (size_t pos = 0; pos != kEnd;) {
    const Level level = level_at(filter, pos);
    Node* child = nodes_.find(node, level.name);
    if (child == nullptr) {
      child = nodes_.insert(std::make_unique<Node>(node, level.name));
      ++node->child_count;
      if (level.name == kPlus) node->has_plus_child = true;
      if (level.name == kHash) node->has_hash_child = true;
    }
    node = child;
    pos = level.next;
  }
  return node;
}

// Frees node and then its ancestors for as long as they hold nothing.
void TopicTree::prune(Node* node) {
  while (node != root_.get() && node->unused()) {
    Node* parent = node->parent;
    if (node->level == kPlus) parent->has_plus_child = false;
    if (node->level == kHash) parent->has_hash_child = false;
    --parent->child_count;
    nodes_.erase(node);
    node = parent;
  }
}

TopicTree::NodeExtra* TopicTree::extra_of(const Node* node) const {
  if (!node->has_extra) return nullptr;
  return extras_.find(node)->second.get();
}

TopicTree::NodeExtra& TopicTree::make_extra(Node* node) {
  std::unique_ptr<NodeExtra>& extra = extras_[node];
  if (!extra) {
    extra = std::make_unique<NodeExtra>();
    node->has_extra = true;
  }
  return *extra;
}

void TopicTree::drop_extra_if_unused(Node* node) {
  const NodeExtra* extra = extra_of(node);
  if (extra != nullptr && extra->groups.empty() && extra->positions.empty()) {
    extras_.erase(node);
    node->has_extra = false;
  }
}

}  // namespace starling::broker
