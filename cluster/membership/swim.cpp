#include "cluster/membership/swim.h"

#include <algorithm>
#include <bit>

namespace starling::cluster {

std::string_view to_string(MemberState state) noexcept {
  switch (state) {
    case MemberState::alive: return "alive";
    case MemberState::suspect: return "suspect";
    case MemberState::dead: return "dead";
    case MemberState::left: return "left";
  }
  return "unknown";
}

namespace {


// Whether news `u` about a member known as (state, incarnation) is newer
// (Lifeguard / memberlist): a higher incarnation always is; at the same
// incarnation suspect beats alive, and dead or left beat both.
bool supersedes(const MemberUpdate& u, MemberState state, uint64_t incarnation) {
  if (u.incarnation != incarnation) return u.incarnation > incarnation;
  switch (u.state) {
    case MemberState::alive: return false;
    case MemberState::suspect: return state == MemberState::alive;
    case MemberState::dead: return !is_gone(state);
    case MemberState::left: return state != MemberState::left;
  }
  return false;
}

}  // namespace

Swim::Swim(std::string self_id, std::string self_address, SwimConfig config, uint64_t seed, Clock::time_point now)
    : self_id_(std::move(self_id)), config_(config), random_(seed) {
  Member self{self_id_, std::move(self_address), 0, MemberState::alive, now, true};
  members_.emplace(self_id_, self);
  queue_gossip(self);
}

uint64_t Swim::incarnation() const { return members_.at(self_id_).incarnation; }

std::optional<Swim::Probe> Swim::next_probe() {
  const auto probeable = [this](const std::string& id) {
    auto it = members_.find(id);
    return it != members_.end() && !it->second.self && !is_gone(it->second.state);
  };
  for (int pass = 0; pass < 2; ++pass) {
    while (round_pos_ < round_.size()) {
      const std::string& id = round_[round_pos_++];
      if (probeable(id)) return Probe{next_probe_id_++, id, members_.at(id).address};
    }
    // A new round: everyone probeable once, in a fresh random order.
    round_.clear();
    round_pos_ = 0;
    for (const auto& [id, m] : members_) {
      if (probeable(id)) round_.push_back(id);
    }
    std::shuffle(round_.begin(), round_.end(), random_);
  }
  return std::nullopt;
}

std::vector<Member> Swim::indirect_helpers(const Probe& probe) {
  std::vector<Member> candidates;
  for (const auto& [id, m] : members_) {
    if (!m.self && id != probe.node_id && m.state == MemberState::alive) candidates.push_back(m);
  }
  std::shuffle(candidates.begin(), candidates.end(), random_);
  if (candidates.size() > config_.indirect_probes) candidates.resize(config_.indirect_probes);
  return candidates;
}

void Swim::probe_answered(const Probe& probe, uint64_t incarnation, Clock::time_point now) {
  // An answer is news that the member is alive at that incarnation; it
  // clears a suspicion only with a higher one (the member refutes it itself,
  // having heard the suspicion in the gossip of our probe).
  auto it = members_.find(probe.node_id);
  if (it == members_.end()) return;
  apply_one(MemberUpdate{probe.node_id, it->second.address, incarnation, MemberState::alive}, now);
}

void Swim::probe_failed(const Probe& probe, Clock::time_point now) {
  auto it = members_.find(probe.node_id);
  if (it == members_.end() || it->second.state != MemberState::alive) return;
  apply_one(MemberUpdate{probe.node_id, it->second.address, it->second.incarnation, MemberState::suspect}, now);
}

void Swim::tick(Clock::time_point now) {
  std::vector<std::string> forget;
  for (auto& [id, m] : members_) {
    if (m.self) continue;
    if (m.state == MemberState::suspect && now - m.since >= config_.suspicion_timeout) {
      set_state(m, MemberState::dead, m.incarnation, now);
    } else if (is_gone(m.state) && now - m.since >= config_.dead_retention) {
      forget.push_back(id);
    }
  }
  for (const auto& id : forget) {
    members_.erase(id);
    pending_.erase(id);
  }
}

std::vector<MemberUpdate> Swim::gossip() {
  std::vector<Pending*> order;
  for (auto& [id, p] : pending_) order.push_back(&p);
  std::stable_sort(order.begin(), order.end(), [](const Pending* a, const Pending* b) { return a->sent < b->sent; });
  if (order.size() > config_.gossip_per_message) order.resize(config_.gossip_per_message);
  std::vector<MemberUpdate> out;
  const size_t limit = retransmit_limit();
  std::vector<std::string> done;
  for (Pending* p : order) {
    out.push_back(p->update);
    if (++p->sent >= limit) done.push_back(p->update.node_id);
  }
  for (const auto& id : done) pending_.erase(id);
  return out;
}

std::vector<MemberUpdate> Swim::snapshot() const {
  std::vector<MemberUpdate> out;
  out.reserve(members_.size());
  for (const auto& [id, m] : members_) out.push_back(MemberUpdate{id, m.address, m.incarnation, m.state});
  return out;
}

size_t Swim::apply(const std::vector<MemberUpdate>& updates, Clock::time_point now) {
  size_t changed = 0;
  for (const auto& u : updates) changed += apply_one(u, now) ? 1 : 0;
  return changed;
}

void Swim::leave(Clock::time_point now) {
  Member& self = members_.at(self_id_);
  set_state(self, MemberState::left, self.incarnation, now);
}

std::vector<Member> Swim::members() const {
  std::vector<Member> out;
  out.reserve(members_.size());
  for (const auto& [id, m] : members_) out.push_back(m);
  return out;
}

std::optional<Member> Swim::find(const std::string& node_id) const {
  auto it = members_.find(node_id);
  if (it == members_.end()) return std::nullopt;
  return it->second;
}

size_t Swim::count(MemberState state) const {
  return static_cast<size_t>(
      std::count_if(members_.begin(), members_.end(), [state](const auto& e) { return e.second.state == state; }));
}

bool Swim::apply_one(const MemberUpdate& u, Clock::time_point now) {
  if (u.node_id.empty()) return false;
  if (u.node_id == self_id_) {
    Member& self = members_.at(self_id_);
    if (self.state == MemberState::left) return false;  // leaving: nothing to refute
    if (u.state != MemberState::alive && u.incarnation >= self.incarnation) {
      refute(u.incarnation, now);  // "you are suspect/dead": no, alive, and newer
      return true;
    }
    if (u.state == MemberState::alive && u.incarnation > self.incarnation) {
      // An older life of this node (before a restart) got that far: go past it.
      refute(u.incarnation, now);
      return true;
    }
    return false;
  }
  auto it = members_.find(u.node_id);
  if (it == members_.end()) {
    // Only the living join the list: news of the death of a member never
    // known, or already forgotten, is old news.
    if (is_gone(u.state)) return false;
    Member m{u.node_id, u.address, u.incarnation, u.state, now, false};
    auto& added = members_.emplace(u.node_id, std::move(m)).first->second;
    queue_gossip(added);
    if (on_change) on_change(added, std::nullopt);
    return true;
  }
  Member& m = it->second;
  if (!supersedes(u, m.state, m.incarnation)) return false;
  if (u.state == MemberState::alive && !u.address.empty()) m.address = u.address;
  // Another member's "dead" about one alive or suspect here only makes it
  // suspect: the news may be stale (from the far side of a partition that
  // just healed, repeated by its gossip), and a member taken for dead has
  // its routes dropped, so what this node acknowledges would miss it.
  // Alive, it refutes within the suspicion timeout; if not, this node's own
  // timeout (tick) declares it dead.
  const bool stale_maybe =
      u.state == MemberState::dead && (m.state == MemberState::alive || m.state == MemberState::suspect);
  set_state(m, stale_maybe ? MemberState::suspect : u.state, u.incarnation, now);
  return true;
}

void Swim::set_state(Member& m, MemberState state, uint64_t incarnation, Clock::time_point now) {
  const MemberState before = m.state;
  const bool moved = before != state;
  m.incarnation = incarnation;
  if (moved) {
    m.state = state;
    m.since = now;
  }
  queue_gossip(m);
  if (moved && on_change) on_change(m, before);
}

void Swim::refute(uint64_t heard_incarnation, Clock::time_point now) {
  Member& self = members_.at(self_id_);
  set_state(self, MemberState::alive, std::max(self.incarnation, heard_incarnation) + 1, now);
}

void Swim::queue_gossip(const Member& m) {
  // Newer news about a member replaces what was waiting, and is sent afresh.
  pending_[m.node_id] = Pending{MemberUpdate{m.node_id, m.address, m.incarnation, m.state}, 0};
}

size_t Swim::retransmit_limit() const {
  const size_t n = members_.size() + 1;
  const size_t log2_ceil = static_cast<size_t>(std::bit_width(n - 1));
  return config_.retransmit_multiplier * std::max<size_t>(1, log2_ceil);
}

}  // namespace starling::cluster
