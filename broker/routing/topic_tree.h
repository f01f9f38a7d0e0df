// The subscription trie the router matches every PUBLISH against (spec 4.7,
// shared subscriptions 4.8.2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "broker/mqtt/subscribe.h"
#include "broker/mqtt/topic.h"

namespace starling::broker {

// Who subscribed: a small id the session registry assigns and maps back to a
// session. A distinct type so it cannot be mixed up with a packet id or a count.
enum class SubscriberId : uint64_t {};

// The options a subscription was granted. 8 bytes, so a subscriber costs 16 in
// the tree.
struct SubscriptionEntry {
  mqtt::SubscriptionOptions options;  // maximum QoS, no local, retain as published, retain handling
  uint32_t subscription_id = 0;       // MQTT 5 Subscription Identifier; 0 = none
  friend bool operator==(const SubscriptionEntry&, const SubscriptionEntry&) = default;
};

struct Subscriber {
  SubscriberId id;
  SubscriptionEntry entry;
  friend bool operator==(const Subscriber&, const Subscriber&) = default;
};

// Names one shared group, that is one share name on one filter: "$share/g/a"
// and "$share/g/b" are two groups. Never reused by a tree, so a router can key
// its round-robin cursor by it and a stale cursor never lands on a new group.
enum class SharedGroupId : uint64_t {};

struct SharedGroup {
  SharedGroupId id;
  std::string name;
  std::vector<Subscriber> members;  // in the order they joined; never empty
  std::string filter;  // what follows $share/NAME/: one group in the cluster is (name, filter)
};

// What match() reports to. Each matching plain subscription is reported once
// per filter, so a subscriber whose filters overlap is reported once for each of
// them: the router merges those ([MQTT-3.3.4-2], [MQTT-3.3.4-3]). Each matching
// shared group is reported whole; the router picks the member.
template <class V>
concept TopicTreeVisitor = requires(V& visitor, SubscriberId id, const SubscriptionEntry& entry,
                                    const SharedGroup& group) {
  visitor.on_subscriber(id, entry);
  visitor.on_shared_group(group);
};

// A trie of topic levels. Every edge lives in one open-addressing table keyed
// by (parent node, level), so a node carries no child container of its own and
// a lookup is one probe whatever the fan-out; '+' and '#' children are flagged
// on their parent so matching probes for them only where they exist.
//
// Not thread-safe. The Router (router.h) owns the tree and guards it with its
// mu_: match() under the shared lock, subscribe/unsubscribe under the exclusive
// one. match() is const and writes nothing, so concurrent matches are safe.
//
// Filters must have passed mqtt::validate_topic_filter, and a shared filter
// must be split with mqtt::parse_shared_filter first; topics must have passed
// mqtt::validate_topic_name. Levels are compared byte for byte, with no
// normalisation [MQTT-4.7.3-4].
class TopicTree {
 public:
  TopicTree();
  ~TopicTree();
  TopicTree(const TopicTree&) = delete;
  TopicTree& operator=(const TopicTree&) = delete;

  // Adds the subscription, or replaces the entry this subscriber already has on
  // this filter [MQTT-3.8.4-3]. True when it is new.
  bool subscribe(std::string_view filter, SubscriberId id, const SubscriptionEntry& entry);
  // The same for a member of a shared group; the group is made on first use.
  bool subscribe(const mqtt::SharedFilter& shared, SubscriberId id, const SubscriptionEntry& entry);

  // Removes the subscription; true when it existed. Nodes left empty are freed
  // and a group left empty disappears.
  bool unsubscribe(std::string_view filter, SubscriberId id);
  bool unsubscribe(const mqtt::SharedFilter& shared, SubscriberId id);

  // Calls visitor.on_subscriber / visitor.on_shared_group for every
  // subscription whose filter matches topic. Allocates nothing.
  template <class V>
    requires TopicTreeVisitor<std::remove_reference_t<V>>
  void match(std::string_view topic, V&& visitor) const {
    using Visitor = std::remove_reference_t<V>;  // may be const: cast back to it below
    const Sink sink{
        const_cast<std::remove_const_t<Visitor>*>(&visitor),
        [](void* v, const Subscriber& s) { static_cast<Visitor*>(v)->on_subscriber(s.id, s.entry); },
        [](void* v, const SharedGroup& g) { static_cast<Visitor*>(v)->on_shared_group(g); },
    };
    match_impl(topic, sink);
  }

  // Subscriptions held: plain ones plus members of shared groups.
  size_t size() const noexcept { return subscriptions_; }
  // Shared groups (one share name on one filter) with at least one member.
  size_t group_count() const noexcept { return groups_; }
  // Nodes, the root included: 1 for an empty tree.
  size_t node_count() const noexcept { return nodes_.size() + 1; }

 private:
  struct Node;
  struct NodeExtra;

  // The visitor with its type erased: two plain function pointers, so the walk
  // lives in the .cpp and costs one indirect call per reported subscription.
  struct Sink {
    void* visitor;
    void (*on_subscriber)(void*, const Subscriber&);
    void (*on_shared_group)(void*, const SharedGroup&);
  };

  // Owns every node but the root. Linear probing with a 15-bit tag per slot in
  // a separate array, so a probe reads a node only when its tag matches.
  class NodeTable {
   public:
    NodeTable();
    ~NodeTable();
    Node* find(const Node* parent, std::string_view level) const;
    Node* insert(std::unique_ptr<Node> node);  // not present yet
    void erase(const Node* node);              // destroys it
    size_t size() const noexcept { return size_; }

   private:
    void rehash(size_t slot_count);
    void place(std::unique_ptr<Node> node);

    std::vector<std::unique_ptr<Node>> slots_;
    std::vector<uint16_t> tags_;  // 0 = empty slot
    size_t size_ = 0;
  };

  void match_impl(std::string_view topic, const Sink& sink) const;
  void match_from(const Node* node, std::string_view topic, size_t pos, const Sink& sink) const;
  void report(const Node* node, const Sink& sink) const;

  Node* find_node(std::string_view filter) const;
  Node* find_or_make_node(std::string_view filter);
  void prune(Node* node);

  NodeExtra* extra_of(const Node* node) const;
  NodeExtra& make_extra(Node* node);
  void drop_extra_if_unused(Node* node);

  std::unique_ptr<Node> root_;
  NodeTable nodes_;
  // Rare per-node state (shared groups, the index of a long subscriber list),
  // kept beside the nodes so the common node stays small.
  std::unordered_map<const Node*, std::unique_ptr<NodeExtra>> extras_;
  size_t subscriptions_ = 0;
  size_t groups_ = 0;
  uint64_t next_group_id_ = 1;
};

}  // namespace starling::broker
