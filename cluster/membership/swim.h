// The SWIM failure detector and membership list of one node (Das, Gupta,
// Motivala 2002, with the suspicion and refutation of its section 4.2, and
// Lifeguard's precedence rules as HashiCorp memberlist applies them).
//
// No transport, no threads, no clock of its own: the caller (the cluster's
// gRPC side) asks whom to probe, carries out the pings, reports what came
// back, passes the time, and piggybacks gossip() on every message. That keeps
// every rule here testable step by step with a fake clock.
//
// A member is alive, suspect (a probe failed; it has suspicion_timeout to
// refute), dead (it did not), or left (it said so). Each member's incarnation
// orders the news about it: only the member itself raises it, to refute a
// suspicion, so "alive with a higher incarnation" always wins over an older
// "suspect".
//
// Not thread-safe: one owner (a strand) drives it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace starling::cluster {

using Clock = std::chrono::steady_clock;

enum class MemberState : uint8_t { alive, suspect, dead, left };
std::string_view to_string(MemberState state) noexcept;
// Alive or suspect: not declared dead, not gone; still answers for its
// sessions as far as this node knows.
inline bool is_up(MemberState state) noexcept { return state == MemberState::alive || state == MemberState::suspect; }
// Dead or left: the other side of is_up.
inline bool is_gone(MemberState state) noexcept { return !is_up(state); }

// News about one member, as gossiped between nodes.
struct MemberUpdate {
  std::string node_id;
  std::string address;  // host:port its peers dial
  uint64_t incarnation = 0;
  MemberState state = MemberState::alive;
  friend bool operator==(const MemberUpdate&, const MemberUpdate&) = default;
};

struct Member {
  std::string node_id;
  std::string address;
  uint64_t incarnation = 0;
  MemberState state = MemberState::alive;
  Clock::time_point since;  // of the current state
  bool self = false;
};

struct SwimConfig {
  std::chrono::milliseconds probe_interval{1000};
  // A suspect that does not refute within this long is declared dead.
  std::chrono::milliseconds suspicion_timeout{5000};
  // Members asked to ping a target that did not answer a direct ping (k).
  size_t indirect_probes = 3;
  // Updates piggybacked on one message, and how often each is sent: this
  // many times log2(members + 1), rounded up, as memberlist does.
  size_t gossip_per_message = 8;
  size_t retransmit_multiplier = 3;
  // Dead and left members are kept this long (so late gossip about them is
  // recognised as old), then forgotten.
  std::chrono::milliseconds dead_retention{60000};
};

class Swim {
 public:
  Swim(std::string self_id, std::string self_address, SwimConfig config, uint64_t seed, Clock::time_point now);

  // --- probing (every probe_interval) ---
  struct Probe {
    uint64_t id = 0;
    std::string node_id;
    std::string address;
  };
  // The next member to ping directly: each alive or suspect member once per
  // round, in an order shuffled anew each round. nullopt when alone.
  std::optional<Probe> next_probe();
  // Up to indirect_probes alive members other than the target, chosen at
  // random, to ask to ping it for us.
  std::vector<Member> indirect_helpers(const Probe& probe);
  // The target answered (directly or through a helper) with its incarnation.
  void probe_answered(const Probe& probe, uint64_t incarnation, Clock::time_point now);
  // Nobody got an answer from the target in time: it becomes suspect.
  void probe_failed(const Probe& probe, Clock::time_point now);
  // Suspects past suspicion_timeout become dead; old dead members are
  // forgotten. Call at least once per probe interval.
  void tick(Clock::time_point now);

  // --- gossip ---
  // The updates to piggyback on the next message: fewest sends first.
  std::vector<MemberUpdate> gossip();
  // Everything known, for a joining node or a full sync.
  std::vector<MemberUpdate> snapshot() const;
  // Applies news from a peer; returns how many members changed. News that
  // this node is suspect or dead is refuted: its incarnation goes past it
  // and "alive" is gossiped.
  size_t apply(const std::vector<MemberUpdate>& updates, Clock::time_point now);
  // This node leaves: "left" is gossiped; the caller sends gossip() to a few
  // members before it stops.
  void leave(Clock::time_point now);

  // --- reading ---
  const std::string& self_id() const { return self_id_; }
  uint64_t incarnation() const;
  std::vector<Member> members() const;  // self included, by node id
  std::optional<Member> find(const std::string& node_id) const;
  size_t count(MemberState state) const;

  // Called after every change of a member's state (alive -> suspect, a dead
  // one back alive, ...); `before` is nullopt for a member new to this node.
  std::function<void(const Member& member, std::optional<MemberState> before)> on_change;

 private:
  // Applies one update by the precedence rules; true when it changed something.
  bool apply_one(const MemberUpdate& u, Clock::time_point now);
  void set_state(Member& m, MemberState state, uint64_t incarnation, Clock::time_point now);
  void queue_gossip(const Member& m);
  void refute(uint64_t heard_incarnation, Clock::time_point now);
  size_t retransmit_limit() const;

  const std::string self_id_;
  const SwimConfig config_;
  std::mt19937_64 random_;
  std::map<std::string, Member, std::less<>> members_;  // self included
  // Probing: this round's order, and where we are in it.
  std::vector<std::string> round_;
  size_t round_pos_ = 0;
  uint64_t next_probe_id_ = 1;
  // Updates waiting to be gossiped, by node id, with how often each was sent.
  struct Pending {
    MemberUpdate update;
    size_t sent = 0;
  };
  std::map<std::string, Pending, std::less<>> pending_;
};

}  // namespace starling::cluster
