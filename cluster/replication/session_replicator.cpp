#include "cluster/replication/session_replicator.h"

#include <algorithm>
#include <future>

#include "broker/count_down.h"
#include "broker/message.h"
#include "broker/metrics.h"
#include "cluster/replication/replica_set.h"
#include "cluster/rpc/cluster_secret.h"
#include "cluster/routing/peer_link.h"
#include "cluster/rpc/peer_channel.h"
#include "cluster/sessions/session_transfer.h"

namespace starling::cluster {
namespace {

// One Replicate call carries at most this much.
constexpr size_t kMaxUpdatesPerCall = 1000;
constexpr size_t kMaxBytesPerCall = 4 * 1024 * 1024;
constexpr auto kPassEvery = std::chrono::seconds(1);
// How long a copy whose owner is gone waits to be opened by the member that
// adopted the session, before it goes.
constexpr auto kOrphanWait = std::chrono::seconds(30);
// How long a member is dead before its sessions are adopted.
constexpr auto kAdoptAfter = std::chrono::seconds(2);
// After start, how long copies read back from disk wait before they are
// settled: news of which members are alive has spread by then.
constexpr auto kDormantWait = std::chrono::seconds(5);
// How often the members are asked about copies read back from disk.
constexpr auto kDormantCheckEvery = std::chrono::seconds(2);
// At most this many completion updates of failed calls are kept for a
// member (each may hold many ids); beyond, they are dropped (the copy may
// then send a message again after a failover).
constexpr size_t kMaxUnconfirmed = 10000;

// `done(true)` once each of `replicas` answered or failed: the client's reply
// goes out either way (a replica that missed an update is filled again).
std::function<void(bool)> all_answered(size_t replicas, std::function<void(bool)> done) {
  return count_down(replicas, [done = std::move(done)](bool) {
    if (done) done(true);
  });
}

}  // namespace

struct SessionReplicator::Call {
  std::string node;
  grpc::ClientContext context;
  v1::ReplicateRequest request;
  v1::ReplicateReply reply;
  std::shared_ptr<v1::Sessions::Stub> stub;
  std::vector<std::function<void(bool)>> dones;
  size_t bytes = 0;
};

SessionReplicator::SessionReplicator(ReplicationConfig config, Membership& membership, broker::Forwarder& forwarder,
                                     std::function<uint64_t()> new_epoch,
                                     std::function<void(const Member&)> rejoined, spdlog::logger& log)
    : config_(std::move(config)),
      sender_(broker::new_message_origin()),
      membership_(membership),
      forwarder_(forwarder),
      new_epoch_(std::move(new_epoch)),
      rejoined_hook_(std::move(rejoined)),
      log_(log) {}

SessionReplicator::~SessionReplicator() { stop(); }

void SessionReplicator::start(broker::SessionRegistry& sessions) {
  std::lock_guard lock(loop_mu_);
  if (thread_.joinable() || stopping_) return;
  sessions_ = &sessions;
  started_ = std::chrono::steady_clock::now();
  woken_ = true;  // the first pass at once: the node is not ready until it is done
  thread_ = std::thread([this] { loop(); });
}

void SessionReplicator::stop() {
  {
    std::lock_guard lock(loop_mu_);
    stopping_ = true;
  }
  loop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Calls under way call back into this object: they end by their deadline.
  std::unique_lock lock(mu_);
  stopping_calls_ = true;
  calls_cv_.wait_for(lock, config_.call_timeout + std::chrono::seconds(1), [this] { return calls_ == 0; });
}

bool SessionReplicator::note_majority_locked(std::chrono::steady_clock::time_point now) {
  size_t alive = 1;  // this node
  size_t up = 1;
  size_t counted = 1;
  for (const auto& [node, state] : states_) {
    if (state == MemberState::left) continue;
    ++counted;
    if (state == MemberState::alive) ++alive;
    if (is_up(state)) ++up;
  }
  if (up * 2 <= counted) minority_seen_at_ = now;
  if (alive * 2 <= counted) return false;
  majority_seen_at_ = now;
  return true;
}

void SessionReplicator::member_changed(const Member& member, std::optional<MemberState> before) {
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(loop_mu_);
    woken_ = true;
    const bool back = before && is_gone(*before);
    if (!member.self && member.state == MemberState::alive && back) {
      rejoined_.push_back(member);
      // Decided before this return counts towards a majority.
      auto gone = gone_.find(member.node_id);
      majority_while_gone_[member.node_id] = gone != gone_.end() && majority_seen_at_ >= gone->second.at;
    }
    if (!member.self) states_[member.node_id] = member.state;
    const bool majority = note_majority_locked(now);
    if (is_gone(member.state)) gone_[member.node_id] = Gone{now, majority};
  }
  loop_cv_.notify_all();
}

void SessionReplicator::refill(const std::string& node) {
  {
    std::lock_guard lock(mu_);
    dirty_.insert(node);
  }
  {
    std::lock_guard lock(loop_mu_);
    woken_ = true;
  }
  loop_cv_.notify_all();
}

std::map<std::string, std::string> SessionReplicator::members_now() const {
  std::map<std::string, std::string> out;
  for (const auto& m : membership_.members()) {
    if (is_up(m.state)) out.emplace(m.node_id, m.address);
  }
  return out;
}

std::vector<std::string> SessionReplicator::choose(const std::string& client_id,
                                                   const std::map<std::string, std::string>& members) const {
  std::vector<std::string> names;
  names.reserve(members.size());
  for (const auto& [name, address] : members) names.push_back(name);
  return pick_replicas(client_id, names, config_.node_id, config_.factor - 1);
}

void SessionReplicator::recorded(const std::shared_ptr<broker::Session>& session, Done done) {
  record(session, std::move(done), false);
}

void SessionReplicator::record(const std::shared_ptr<broker::Session>& session, Done done, bool send_back) {
  const auto members = members_now();
  const std::string& client_id = session->client_id();
  auto replicas = choose(client_id, members);
  std::vector<std::string> gone;
  std::vector<std::string> added;
  {
    std::lock_guard lock(mu_);
    auto [it, fresh] = placed_.try_emplace(client_id);
    Placement& p = it->second;
    for (const auto& node : p.replicas) {
      // Another session of the client (a clean start): the old copy goes
      // first, so the new one starts from what this session has.
      const bool kept = std::find(replicas.begin(), replicas.end(), node) != replicas.end();
      if (!kept || p.generation != session->id()) gone.push_back(node);
    }
    for (const auto& node : replicas) {
      if (fresh || std::find(p.replicas.begin(), p.replicas.end(), node) == p.replicas.end()) {
        ++copies_made_;
        added.push_back(node);
      }
    }
    p.generation = session->id();
    p.replicas = replicas;
  }
  for (const auto& node : gone) drop_at(node, client_id);
  if (replicas.empty()) {
    if (done) done(true);
    return;
  }
  auto each = all_answered(replicas.size(), std::move(done));
  for (const auto& node : replicas) {
    // A restarted owner asks for what its copies hold (send_back): no reset.
    const bool reset = !send_back && std::find(added.begin(), added.end(), node) != added.end() && was_cut_off(node);
    copy_to(node, members.at(node), session, replicas, send_back, reset, each);
  }
}

bool SessionReplicator::was_cut_off(const std::string& node) {
  std::lock_guard lock(loop_mu_);
  auto it = gone_.find(node);
  return it != gone_.end() && it->second.majority && minority_seen_at_ < it->second.at;
}

bool SessionReplicator::refuses_copy_from(const std::string& node, const std::string& client_id) {
  if (!was_cut_off(node)) return false;
  if (refusals_logged_.allow()) {
    log_.info("cluster: copies {} sent back (client {}'s among them) not merged: it was cut off while this node "
              "kept a majority, so they miss what clients completed here",
              node, client_id);
  }
  return true;
}

void SessionReplicator::copy_to(const std::string& node, const std::string& address,
                                const std::shared_ptr<broker::Session>& session,
                                const std::vector<std::string>& replicas, bool send_back, bool reset,
                                std::function<void(bool)> done) {
  Pending open;
  open.update.set_client_id(session->client_id());
  auto* o = open.update.mutable_open();
  o->set_generation(session->id());
  o->set_expiry_interval(session->expiry_interval());
  o->set_connect_epoch(session->connect_epoch());
  const auto subscriptions = session->subscriptions();
  add_subscriptions(*o->mutable_subscriptions(), {subscriptions.begin(), subscriptions.end()});
  for (const auto& r : replicas) o->add_replicas(r);
  o->set_send_back(send_back);
  o->set_reset(reset);
  set_will(*o->mutable_will(), session->copied_will());
  // The fill is taken once the member has the copy's routes: what came to
  // the session before is in it, what comes after reaches the copy itself.
  open.done = [this, node, address, weak = std::weak_ptr(session), done = std::move(done)](bool ok) {
    auto session = weak.lock();
    if (!ok || !session) return done(ok);
    // Read and queued in one step: a completion told meanwhile (tell())
    // either is in what is read or goes after the fill, never ahead of a
    // fill that still has its message.
    send(node, address, [&] {
      Pending fill;
      fill.update.set_client_id(session->client_id());
      auto* f = fill.update.mutable_fill();
      // The queue first: one sent in between is then in both (kept once),
      // not in neither.
      const auto queued = session->queued_snapshot();
      add_deliveries(*f->mutable_deliveries(), session->inflight_snapshot(), queued);
      for (uint16_t packet_id : session->inbound_qos2_snapshot()) f->add_inbound_qos2(packet_id);
      fill.done = done;
      return fill;
    });
  };
  send(node, address, std::move(open));
}

void SessionReplicator::drop_at(const std::string& node, const std::string& client_id) {
  Pending drop;
  drop.update.set_client_id(client_id);
  drop.update.set_drop(true);
  send(node, {}, std::move(drop));
}

void SessionReplicator::released(const broker::Session& session, const broker::MessageId& id, uint16_t packet_id,
                                 Done done) {
  std::vector<std::string> replicas;
  {
    std::lock_guard lock(mu_);
    auto it = placed_.find(session.client_id());
    if (it != placed_.end() && it->second.generation == session.id()) replicas = it->second.replicas;
  }
  if (replicas.empty() || !id.known()) return done(true);
  auto each = all_answered(replicas.size(), std::move(done));
  for (const auto& node : replicas) {
    Pending p;
    p.update.set_client_id(session.client_id());
    auto* r = p.update.mutable_released();
    set_message_id(*r->mutable_id(), id);
    r->set_packet_id(packet_id);
    p.done = each;
    send(node, {}, std::move(p));
  }
}

void SessionReplicator::completed(const broker::Session& session, const broker::MessageId& id) {
  if (!id.known()) return;
  tell(session, &v1::ReplicaUpdate::has_forget,
       [&](v1::ReplicaUpdate& u) { set_message_id(*u.mutable_forget()->add_ids(), id); });
}

std::vector<broker::MessageId> SessionReplicator::unconfirmed_completions(const broker::Session& session) const {
  std::vector<broker::MessageId> ids;
  const auto take = [&](const v1::ReplicaUpdate& u) {
    if (!u.has_forget() || u.client_id() != session.client_id()) return;
    for (const auto& id : u.forget().ids()) ids.push_back(message_id(id));
  };
  std::lock_guard lock(mu_);
  for (const auto& [node, box] : outboxes_) {
    if (box.under_way) {
      for (const auto& u : box.under_way->updates()) take(u);
    }
    for (const auto& p : box.queue) take(p.update);
    for (const auto& u : box.unconfirmed) take(u);
  }
  return ids;
}

void SessionReplicator::resend_unconfirmed(const std::map<std::string, std::string>& members) {
  std::vector<std::pair<std::string, std::vector<v1::ReplicaUpdate>>> again;
  {
    std::lock_guard lock(mu_);
    for (auto& [node, box] : outboxes_) {
      if (box.unconfirmed.empty() || !members.contains(node)) continue;
      again.emplace_back(node, std::exchange(box.unconfirmed, {}));
    }
  }
  for (auto& [node, updates] : again) {
    for (auto& update : updates) send(node, {}, Pending{std::move(update), {}});
  }
}

void SessionReplicator::sent(const broker::Session& session, const broker::MessageId& id, uint16_t packet_id) {
  if (!id.known()) return;
  tell(session, &v1::ReplicaUpdate::has_sent, [&](v1::ReplicaUpdate& u) {
    set_message_id(*u.mutable_sent()->add_ids(), id);
    u.mutable_sent()->add_packet_ids(packet_id);
  });
}

void SessionReplicator::inbound_qos2(const broker::Session& session, uint16_t packet_id, bool released, Done done) {
  tell(
      session, &v1::ReplicaUpdate::has_inbound,
      [&](v1::ReplicaUpdate& u) { u.mutable_inbound()->add_changes(packet_id + (released ? 0x10000u : 0u)); },
      done ? all_answered(1, std::move(done)) : Done{});
}

void SessionReplicator::queued(const broker::Session& session, const broker::Delivery& delivery, Done done) {
  tell(
      session, &v1::ReplicaUpdate::has_queued,
      [&](v1::ReplicaUpdate& u) { add_deliveries(*u.mutable_queued()->mutable_deliveries(), {}, {delivery}); },
      std::move(done));
}

void SessionReplicator::will_changed(const broker::Session& session) {
  const auto will = session.copied_will();
  // Updates of this kind in a row: the last one stands.
  tell(session, &v1::ReplicaUpdate::has_will, [&](v1::ReplicaUpdate& u) { set_will(*u.mutable_will(), will); });
}

void SessionReplicator::tell(const broker::Session& session, bool (v1::ReplicaUpdate::*same_kind)() const,
                             const std::function<void(v1::ReplicaUpdate&)>& add, Done done) {
  std::vector<std::shared_ptr<Call>> start;
  Done nobody_to_wait_for;
  {
    std::lock_guard lock(mu_);
    std::vector<std::string> replicas;
    if (auto it = placed_.find(session.client_id()); it != placed_.end() && it->second.generation == session.id()) {
      for (const auto& node : it->second.replicas) {
        if (outboxes_.contains(node)) replicas.push_back(node);
      }
    }
    Done each;
    if (replicas.empty()) {
      nobody_to_wait_for = std::move(done);
    } else if (done) {
      each = count_down(replicas.size(), std::move(done));
    }
    for (const auto& node : replicas) {
      Outbox& box = outboxes_.at(node);
      auto& queue = box.queue;
      // Updates of one kind for one session coming one after another
      // travel as one.
      if (!queue.empty() && queue.back().update.client_id() == session.client_id() &&
          (queue.back().update.*same_kind)()) {
        add(queue.back().update);
        if (each) {
          queue.back().done = [before = std::move(queue.back().done), each](bool ok) {
            if (before) before(ok);
            each(ok);
          };
        }
        continue;
      }
      Pending p;
      p.update.set_client_id(session.client_id());
      add(p.update);
      p.done = each;
      queue.push_back(std::move(p));
      ++pending_updates_;
      if (auto call = prepare_locked(node, box)) start.push_back(std::move(call));
    }
  }
  for (auto& call : start) launch(std::move(call));
  if (nobody_to_wait_for) nobody_to_wait_for(true);
}

void SessionReplicator::send(const std::string& node, const std::string& address, Pending pending) {
  send(node, address, [&] { return std::move(pending); });
}

void SessionReplicator::send(const std::string& node, const std::string& address,
                             const std::function<Pending()>& build) {
  std::shared_ptr<Call> call;
  {
    std::lock_guard lock(mu_);
    auto [it, fresh] = outboxes_.try_emplace(node);
    Outbox& box = it->second;
    if (!address.empty() && address != box.address) {
      box.address = address;
      box.stub.reset();
    }
    if (box.address.empty() || stopping_calls_) {
      // Never reached: nothing was ever sent to it, so it has nothing to drop.
      if (fresh) outboxes_.erase(it);
      if (auto pending = build(); pending.done) pending.done(false);
      return;
    }
    box.queue.push_back(build());
    ++pending_updates_;
    call = prepare_locked(node, box);
  }
  if (call) launch(std::move(call));
}

std::shared_ptr<SessionReplicator::Call> SessionReplicator::prepare_locked(const std::string& node, Outbox& box) {
  if (box.busy || box.queue.empty() || stopping_calls_) return nullptr;
  auto call = std::make_shared<Call>();
  call->node = node;
  call->request.set_from_node(config_.node_id);
  call->request.set_sender(sender_);
  call->request.set_call(++box.calls);
  while (!box.queue.empty() && call->request.updates_size() < static_cast<int>(kMaxUpdatesPerCall) &&
         call->bytes < kMaxBytesPerCall) {
    Pending& p = box.queue.front();
    call->bytes += p.update.ByteSizeLong();
    *call->request.add_updates() = std::move(p.update);
    call->dones.push_back(std::move(p.done));
    box.queue.pop_front();
  }
  if (!box.stub) box.stub = v1::Sessions::NewStub(peer_channel(box.address, config_.credentials));
  call->stub = box.stub;
  box.busy = true;
  box.under_way = std::shared_ptr<const v1::ReplicateRequest>(call, &call->request);
  ++calls_;
  return call;
}

void SessionReplicator::launch(std::shared_ptr<Call> call) {
  call->context.set_deadline(std::chrono::system_clock::now() + config_.call_timeout);
  attach_secret(call->context, config_.secret);
  call->stub->async()->Replicate(&call->context, &call->request, &call->reply,
                                 [this, call](grpc::Status status) { finished(call, status); });
}

void SessionReplicator::finished(const std::shared_ptr<Call>& call, const grpc::Status& status) {
  const bool ok = status.ok();
  const size_t count = call->dones.size();
  (ok ? updates_ok_ : updates_failed_).fetch_add(count, std::memory_order_relaxed);
  if (ok) bytes_sent_.fetch_add(call->bytes, std::memory_order_relaxed);
  if (!ok && failures_logged_.allow()) {
    log_.warn("cluster: {} did not take {} replica update(s): {}; its copies are filled again", call->node, count,
              status.error_message());
  }
  std::shared_ptr<Call> next;
  {
    std::lock_guard lock(mu_);
    pending_updates_ -= std::min(pending_updates_, count);
    if (!ok) dirty_.insert(call->node);
    auto box = outboxes_.find(call->node);
    if (box != outboxes_.end()) {
      box->second.busy = false;
      box->second.under_way.reset();
      if (!ok) {
        for (auto& update : *call->request.mutable_updates()) {
          if (update.has_forget() && box->second.unconfirmed.size() < kMaxUnconfirmed) {
            box->second.unconfirmed.push_back(std::move(update));
          }
        }
      }
      next = prepare_locked(call->node, box->second);
    }
  }
  if (ok && call->reply.sent_back_size() > 0) {
    if (broker::SessionRegistry* sessions = sessions_.load()) {
      for (const auto& back : call->reply.sent_back()) {
        const size_t merged = merge_sent_back(*sessions, back.client_id(), back.deliveries());
        log_.info("cluster: {} sent back client {}'s copy: {} of {} messages were not here", call->node,
                  back.client_id(), merged, back.deliveries_size());
      }
    }
  }
  for (auto& done : call->dones) {
    if (done) done(ok);
  }
  if (next) launch(std::move(next));
  std::lock_guard lock(mu_);
  if (--calls_ == 0) calls_cv_.notify_all();
}

void SessionReplicator::loop() {
  std::unique_lock lock(loop_mu_);
  while (!stopping_) {
    loop_cv_.wait_for(lock, kPassEvery, [this] { return stopping_ || woken_; });
    if (stopping_) break;
    woken_ = false;
    auto rejoined = std::exchange(rejoined_, {});
    lock.unlock();
    for (const auto& member : rejoined) {
      if (rejoined_hook_) rejoined_hook_(member);
    }
    pass();
    lock.lock();
  }
}

void SessionReplicator::resync(const std::map<std::string, std::string>& members, bool end) {
  for (const auto& [node, address] : members) {
    if (node == config_.node_id) continue;
    Pending p;
    p.update.mutable_resync()->set_end(end);
    send(node, address, std::move(p));
  }
}

void SessionReplicator::pass() {
  broker::SessionRegistry* sessions = sessions_.load();
  const auto members = members_now();
  adopt_orphans(members);
  if (resynced_) settle_dormant(members);
  // The first pass opens every session's copies again: copies the members
  // hold from before this node started, and that it does not open, go.
  const bool first = !resynced_;
  if (first) {
    // A message for one of this node's sessions that reached only its copy
    // (this node was down) can come until every node routes it here again:
    // the copies are asked for what they have after that.
    auto known = std::make_shared<std::promise<void>>();
    forwarder_.when_routes_known([known](bool) { known->set_value(); });
    known->get_future().wait_for(config_.call_timeout);
    resync(members, false);
  }
  // Ahead of the refills: a completion lost with a failed call must not
  // leave its message in a copy the refill merges into.
  resend_unconfirmed(members);
  std::unordered_set<std::string> dirty;
  {
    std::lock_guard lock(mu_);
    dirty.swap(dirty_);
  }
  const auto lasting = sessions->lasting_sessions();
  // The first pass is done once every session's copies answered (what they
  // sent back is merged by then).
  std::function<void(bool)> first_done;
  if (first) {
    first_done = count_down(lasting.size() + 1, [this](bool) { resynced_done_.store(true); });
  }
  for (const auto& session : lasting) {
    const auto replicas = choose(session->client_id(), members);
    bool current = false;
    {
      std::lock_guard lock(mu_);
      auto it = placed_.find(session->client_id());
      current = it != placed_.end() && it->second.generation == session->id() && it->second.replicas == replicas &&
                std::none_of(replicas.begin(), replicas.end(), [&](const auto& n) { return dirty.contains(n); });
    }
    // After a restart, what came to a copy while this node was down comes back.
    if (!current) {
      record(session, first_done, first);
    } else if (first_done) {
      first_done(true);
    }
  }
  // Sessions that ended here, or moved to another node: their copies go.
  std::vector<std::pair<std::string, std::vector<std::string>>> ended;
  {
    std::lock_guard lock(mu_);
    for (auto it = placed_.begin(); it != placed_.end();) {
      auto session = sessions->find(it->first);
      if (session && session->id() == it->second.generation && session->expiry_interval() > 0) {
        ++it;
        continue;
      }
      ended.emplace_back(it->first, std::move(it->second.replicas));
      it = placed_.erase(it);
    }
  }
  for (const auto& [client_id, replicas] : ended) {
    for (const auto& node : replicas) drop_at(node, client_id);
  }
  if (first) {
    resync(members, true);
    resynced_ = true;
    first_done(true);
    log_.info("cluster: {} sessions copied again to the members after start", lasting.size());
  }
}

void SessionReplicator::adopt_orphans(const std::map<std::string, std::string>& members) {
  const auto now = std::chrono::steady_clock::now();
  // The small side of a partition adopts nothing: the other side has the
  // sessions' owners, or adopts for them.
  if (!membership_.has_quorum()) {
    quorum_since_.reset();
    return;
  }
  if (!quorum_since_) quorum_since_ = now;
  broker::SessionRegistry* sessions = sessions_.load();
  const auto all = membership_.members();
  // Gone for a moment: a member declared dead on stale news (a partition
  // healing) says it is alive again within about a second. So does an owner
  // this node declared dead while it was cut off itself, and sees again
  // soon after the others (a copy adopted then would be stale).
  const auto gone_for_good = [&](const std::string& owner) {
    if (now - *quorum_since_ < kAdoptAfter) return false;
    for (const auto& m : all) {
      if (m.node_id == owner) return now - m.since >= kAdoptAfter;
    }
    return true;  // forgotten long ago
  };
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> orphans;
  for (const auto& [client_id, of] : sessions->replicas()) {
    if (members.contains(of.owner)) continue;
    if (!gone_for_good(of.owner)) {
      if (auto seen = orphan_since_.find(client_id); seen != orphan_since_.end()) orphans.insert(*seen);
      continue;
    }
    std::vector<std::string> live;
    for (const auto& node : of.replicas) {
      if (members.contains(node)) live.push_back(node);
    }
    // The copies' owner is gone: the highest-ranked surviving replica takes
    // the session (each survivor computes the same one).
    const auto adopter = pick_adopter(client_id, of.replicas, live);
    if (adopter && *adopter != config_.node_id) {
      // Another copy adopted it; its new owner opens this one again if it
      // keeps a copy here. A copy nobody opens goes after a while.
      auto seen = orphan_since_.find(client_id);
      const auto since = seen != orphan_since_.end() ? seen->second : now;
      if (now - since < kOrphanWait) {
        orphans.emplace(client_id, since);
      } else {
        sessions->replica_drop(client_id, of.owner);
      }
      continue;
    }
    if (sessions->promote(client_id, new_epoch_())) {
      adopted_.fetch_add(1, std::memory_order_relaxed);
      log_.info("cluster: adopted client {}'s session: its owner {} is gone", client_id, of.owner);
    }
  }
  orphan_since_ = std::move(orphans);
}

void SessionReplicator::settle_dormant(const std::map<std::string, std::string>& members) {
  broker::SessionRegistry* sessions = sessions_.load();
  const auto dormant = sessions->dormant_copies();
  if (dormant.empty()) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - started_ < kDormantWait || !membership_.has_quorum()) return;
  std::vector<std::string> ask;
  std::vector<const broker::SessionRegistry::Dormant*> asked_about;  // in the order of `ask`
  for (const auto& [client_id, d] : dormant) {
    if (sessions->find(client_id)) {
      sessions->drop_dormant(client_id);
      dormant_since_.erase(client_id);
    } else {
      ask.push_back(client_id);
      asked_about.push_back(&d);
    }
  }
  if (ask.empty() || now < next_dormant_check_) return;
  next_dormant_check_ = now + kDormantCheckEvery;
  std::unordered_set<std::string> held;
  std::unordered_set<std::string> asked;
  for (const auto& peer : membership_.live_peers()) {
    auto found = find_held_sessions(peer, config_.secret, config_.credentials, ask, config_.node_id);
    if (!found) return;  // it may have one: asked again next time
    held.insert(found->begin(), found->end());
    asked.insert(peer.node_id);
  }
  std::vector<std::string> live;
  for (const auto& [node, address] : members) live.push_back(node);
  for (size_t i = 0; i < ask.size(); ++i) {
    const std::string& client_id = ask[i];
    const auto& d = *asked_about[i];
    // Another member has it, or its owner answered without it (the session
    // ended there): this copy is stale.
    if (held.contains(client_id) || asked.contains(d.owner)) {
      sessions->drop_dormant(client_id);
      dormant_since_.erase(client_id);
      continue;
    }
    // Its owner may still be alive (suspect, not asked): not yet.
    if (members.contains(d.owner)) continue;
    const auto since = dormant_since_.try_emplace(client_id, now).first->second;
    const auto adopter = pick_adopter(client_id, d.replicas, live);
    if ((!adopter || *adopter != config_.node_id) && now - since < kOrphanWait) continue;
    dormant_since_.erase(client_id);
    if (sessions->promote_dormant(client_id, new_epoch_())) {
      adopted_.fetch_add(1, std::memory_order_relaxed);
      log_.info("cluster: adopted client {}'s session from its copy read back from disk: its owner {} is gone, and "
                "no member has it",
                client_id, d.owner);
    }
  }
}

void SessionReplicator::send_copies_back(const Member& owner) {
  broker::SessionRegistry* sessions = sessions_.load();
  if (sessions == nullptr) return;
  std::chrono::steady_clock::time_point gone_at;
  {
    std::lock_guard lock(loop_mu_);
    auto it = gone_.find(owner.node_id);
    if (it == gone_.end()) return;
    gone_at = it->second.at;
    // This node was cut off too (the owner may have kept serving): what its
    // copies hold that the owner lacks was never acknowledged, and what the
    // owner's client completed meanwhile is still in them.
    if (auto seen = majority_while_gone_.find(owner.node_id); seen != majority_while_gone_.end() && !seen->second) {
      log_.info("cluster: {} is back; no copies sent back to it: this node saw no majority since it went",
                owner.node_id);
      return;
    }
  }
  size_t copies = 0;
  for (const auto& [client_id, of] : sessions->replicas()) {
    // A copy made since (by an owner that is back) has nothing it lacks.
    if (of.owner != owner.node_id || of.opened > gone_at) continue;
    Pending p;
    p.update.set_client_id(client_id);
    add_deliveries(*p.update.mutable_sent_back()->mutable_deliveries(), {},
                   sessions->replica_queue(client_id, owner.node_id));
    send(owner.node_id, owner.address, std::move(p));
    ++copies;
  }
  if (copies > 0) log_.info("cluster: {} is back: {} copies of its sessions sent back to it", owner.node_id, copies);
}

void SessionReplicator::collect_metrics(std::vector<prometheus::MetricFamily>& out) const {
  using prometheus::MetricType;
  auto updates = broker::metric_family("starling_cluster_replication_updates_total",
                                       "Updates sent to the members that keep copies of this node's persistent "
                                       "sessions, by result: ok (applied there), failed (not answered in time; "
                                       "the copies are filled again).",
                                       MetricType::Counter);
  broker::add_sample(updates, static_cast<double>(updates_ok_.load()), {{"result", "ok"}});
  broker::add_sample(updates, static_cast<double>(updates_failed_.load()), {{"result", "failed"}});
  out.push_back(std::move(updates));
  auto bytes = broker::metric_family("starling_cluster_replication_bytes_total",
                                     "Bytes of session updates that replicas applied.", MetricType::Counter);
  broker::add_sample(bytes, static_cast<double>(bytes_sent_.load()));
  out.push_back(std::move(bytes));
  size_t pending = 0;
  {
    std::lock_guard lock(mu_);
    pending = pending_updates_;
  }
  auto lag = broker::metric_family("starling_cluster_replication_pending_updates",
                                   "Session updates queued for replicas or under way (replication lag).",
                                   MetricType::Gauge);
  broker::add_sample(lag, static_cast<double>(pending));
  out.push_back(std::move(lag));
  auto adopted = broker::metric_family("starling_cluster_sessions_adopted_total",
                                       "Sessions this node took over from its copy when their owner died.",
                                       MetricType::Counter);
  broker::add_sample(adopted, static_cast<double>(adopted_.load()));
  out.push_back(std::move(adopted));
  auto copies = broker::metric_family("starling_cluster_replicas_made_total",
                                      "Copies of this node's sessions made on a member that had none (a new "
                                      "session, or re-replication after a member came or went).",
                                      MetricType::Counter);
  broker::add_sample(copies, static_cast<double>(copies_made_.load()));
  out.push_back(std::move(copies));
  if (broker::SessionRegistry* sessions = sessions_.load()) {
    auto held = broker::metric_family("starling_cluster_replicas",
                                      "Copies of other nodes' sessions held here.", MetricType::Gauge);
    broker::add_sample(held, static_cast<double>(sessions->replica_count()));
    out.push_back(std::move(held));
  }
}

}  // namespace starling::cluster
