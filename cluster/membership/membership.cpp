#include "cluster/membership/membership.h"

#include <algorithm>
#include <set>

#include "cluster/rpc/async_call.h"
#include "cluster/rpc/cluster_secret.h"
#include "cluster/rpc/peer_channel.h"

namespace starling::cluster {
namespace {

std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

void add_gossip(const std::vector<MemberUpdate>& updates,
                google::protobuf::RepeatedPtrField<v1::MemberUpdate>& out) {
  for (const auto& u : updates) *out.Add() = to_proto(u);
}

std::vector<MemberUpdate> read_gossip(const google::protobuf::RepeatedPtrField<v1::MemberUpdate>& in) {
  std::vector<MemberUpdate> out;
  out.reserve(static_cast<size_t>(in.size()));
  for (const auto& u : in) out.push_back(from_proto(u));
  return out;
}

}  // namespace

v1::MemberUpdate to_proto(const MemberUpdate& u) {
  v1::MemberUpdate p;
  p.set_node_id(u.node_id);
  p.set_address(u.address);
  p.set_incarnation(u.incarnation);
  p.set_state(static_cast<v1::MemberState>(u.state));
  return p;
}

MemberUpdate from_proto(const v1::MemberUpdate& p) {
  // An unknown state (from a newer peer) reads as alive: the least harmful guess.
  const auto state = p.state() <= v1::MEMBER_STATE_LEFT ? static_cast<MemberState>(p.state()) : MemberState::alive;
  return MemberUpdate{p.node_id(), p.address(), p.incarnation(), state};
}

Membership::Membership(MembershipConfig config, SeedResolver seeds, spdlog::logger& log)
    : config_(std::move(config)),
      seeds_(std::move(seeds)),
      log_(log),
      swim_(config_.node_id, config_.address, config_.swim, std::random_device{}(), Clock::now()) {
  swim_.on_change = [this](const Member& m, std::optional<MemberState> before) {
    changes_.push_back(Change{m, before});  // mutex_ is held: Swim is only called under it
  };
}

Membership::~Membership() { stop(); }

void Membership::start() {
  std::lock_guard lock(mutex_);
  started_ = Clock::now();
  next_seed_sync_ = started_;
  thread_ = std::thread([this] { run(); });
}

void Membership::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

namespace {

template <typename Request, typename Reply>
using MembershipCall = AsyncCall<v1::Membership::Stub, Request, Reply>;

// Waits for a number of asynchronous calls, or for the first success.
struct Outstanding {
  std::mutex mutex;
  std::condition_variable done;
  size_t pending = 0;
  std::optional<v1::PingReply> answer;

  void finish(const grpc::Status& status, const v1::PingReply& reply, const std::string& expected_node) {
    std::lock_guard lock(mutex);
    if (status.ok() && reply.node_id() == expected_node && !answer) answer = reply;
    --pending;
    done.notify_all();
  }
  // Until the first answer (when `first`), or all are done, or the deadline.
  void wait(Clock::time_point deadline, bool first) {
    std::unique_lock lock(mutex);
    done.wait_until(lock, deadline, [&] { return pending == 0 || (first && answer); });
  }
};

}  // namespace

grpc::ClientContext* Membership::prepare(grpc::ClientContext& context, std::chrono::milliseconds timeout) const {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  attach_secret(context, config_.secret);
  return &context;
}

std::shared_ptr<v1::Membership::Stub> Membership::stub_for(const std::string& address) {
  std::lock_guard lock(mutex_);
  auto it = stubs_.find(address);
  if (it != stubs_.end()) return it->second;
  auto channel = peer_channel(address, config_.credentials);
  std::shared_ptr<v1::Membership::Stub> stub = v1::Membership::NewStub(channel);
  stubs_.emplace(address, stub);
  return stub;
}

void Membership::leave() {
  std::vector<std::string> addresses;
  std::vector<MemberUpdate> gossip;
  uint64_t incarnation = 0;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    swim_.leave(Clock::now());
    for (const auto& m : swim_.members()) {
      if (!m.self && m.state == MemberState::alive) addresses.push_back(m.address);
    }
    // A few members are enough: they gossip it on.
    std::shuffle(addresses.begin(), addresses.end(), std::mt19937_64{std::random_device{}()});
    if (addresses.size() > 3) addresses.resize(3);
    gossip = swim_.gossip();
    incarnation = swim_.incarnation();
  }
  notify();
  auto outstanding = std::make_shared<Outstanding>();
  outstanding->pending = addresses.size();
  for (const auto& address : addresses) {
    auto call = std::make_shared<MembershipCall<v1::PingRequest, v1::PingReply>>();
    call->stub = stub_for(address);
    call->request.set_from_node(config_.node_id);
    call->request.set_from_address(config_.address);
    call->request.set_incarnation(incarnation);
    add_gossip(gossip, *call->request.mutable_gossip());
    prepare(call->context, config_.ping_timeout);
    call->stub->async()->Ping(&call->context, &call->request, &call->reply, [outstanding, call](grpc::Status s) {
      outstanding->finish(s, call->reply, {});
    });
  }
  outstanding->wait(Clock::now() + config_.ping_timeout + std::chrono::milliseconds(100), false);
  log_.info("cluster: left; told {} member(s)", addresses.size());
  stop();
}

void Membership::run() {
  for (;;) {
    const auto round_start = Clock::now();
    bool seeds_due = false;
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      swim_.tick(round_start);
      seeds_due = round_start >= next_seed_sync_;
    }
    notify();
    if (seeds_due) sync_with_seeds();
    probe_once();
    notify();
    std::unique_lock lock(mutex_);
    if (wake_.wait_until(lock, round_start + config_.swim.probe_interval, [this] { return stopping_; })) return;
  }
}

std::vector<MemberUpdate> Membership::gossip_for(const std::string& to) {
  auto gossip = swim_.gossip();
  if (auto m = swim_.find(to); m && m->state != MemberState::alive) {
    const bool included = std::any_of(gossip.begin(), gossip.end(), [&](const auto& u) { return u.node_id == to; });
    if (!included) gossip.push_back(MemberUpdate{m->node_id, m->address, m->incarnation, m->state});
  }
  return gossip;
}

void Membership::probe_once() {
  Swim::Probe probe;
  v1::PingRequest request;
  {
    std::lock_guard lock(mutex_);
    auto next = swim_.next_probe();
    if (!next) return;
    probe = std::move(*next);
    request.set_from_node(config_.node_id);
    request.set_from_address(config_.address);
    request.set_incarnation(swim_.incarnation());
    add_gossip(gossip_for(probe.node_id), *request.mutable_gossip());
  }
  const auto start = Clock::now();
  std::optional<v1::PingReply> answer;
  {
    grpc::ClientContext context;
    v1::PingReply reply;
    const auto status = stub_for(probe.address)->Ping(prepare(context, config_.ping_timeout), request, &reply);
    if (status.ok() && reply.node_id() == probe.node_id) {
      answer = std::move(reply);
      probes_direct_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (!answer) {
    // SWIM's ping-req: k others try the target for us, within the rest of
    // the probe interval.
    std::vector<Member> helpers;
    v1::PingReqRequest indirect;
    {
      std::lock_guard lock(mutex_);
      helpers = swim_.indirect_helpers(probe);
      indirect.set_from_node(config_.node_id);
      indirect.set_target_node(probe.node_id);
      indirect.set_target_address(probe.address);
      indirect.set_timeout_ms(static_cast<uint32_t>(config_.ping_timeout.count()));
      add_gossip(gossip_for(probe.node_id), *indirect.mutable_gossip());
    }
    const auto deadline = start + config_.swim.probe_interval - std::chrono::milliseconds(50);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (!helpers.empty() && left > config_.ping_timeout) {
      auto outstanding = std::make_shared<Outstanding>();
      outstanding->pending = helpers.size();
      for (const auto& helper : helpers) {
        auto call = std::make_shared<MembershipCall<v1::PingReqRequest, v1::PingReply>>();
        call->stub = stub_for(helper.address);
        call->request = indirect;
        prepare(call->context, left);
        call->stub->async()->PingReq(&call->context, &call->request, &call->reply,
                                     [outstanding, call, target = probe.node_id](grpc::Status s) {
                                       outstanding->finish(s, call->reply, target);
                                     });
      }
      outstanding->wait(deadline, true);
      std::lock_guard lock(outstanding->mutex);
      answer = outstanding->answer;
      if (answer) probes_indirect_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  if (answer) {
    swim_.apply(read_gossip(answer->gossip()), now);
    swim_.probe_answered(probe, answer->incarnation(), now);
  } else {
    probes_failed_.fetch_add(1, std::memory_order_relaxed);
    swim_.probe_failed(probe, now);
  }
}

void Membership::sync_with_seeds() {
  const std::vector<std::string> seeds = seeds_ ? seeds_() : std::vector<std::string>{};
  std::set<std::string> known;  // addresses of live members, this node's included
  {
    std::lock_guard lock(mutex_);
    for (const auto& m : swim_.members()) {
      if (!is_gone(m.state)) known.insert(m.address);
    }
  }
  size_t asked = 0;
  std::string answered;
  for (const auto& seed : seeds) {
    if (known.contains(seed)) continue;
    ++asked;
    if (sync_with(seed) && answered.empty()) answered = seed;
  }
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  if (!joined_) {
    if (!answered.empty()) {
      joined_ = true;
      log_.info("cluster: joined through {}; {} member(s) known", answered, swim_.members().size());
    } else if (asked == 0) {
      joined_ = true;  // no seeds, or only this node and members already known
      log_.info("cluster: no other seed to join; {} member(s) known", swim_.members().size());
    } else if (now - started_ >= config_.join_timeout) {
      joined_ = true;
      log_.warn("cluster: no seed answered within {} ms; serving alone until one does",
                config_.join_timeout.count());
    }
  }
  next_seed_sync_ = now + (joined_ ? config_.seed_interval : config_.swim.probe_interval);
}

bool Membership::sync_with(const std::string& address) {
  v1::SyncRequest request;
  {
    std::lock_guard lock(mutex_);
    request.set_from_node(config_.node_id);
    add_gossip(swim_.snapshot(), *request.mutable_members());
  }
  grpc::ClientContext context;
  v1::SyncReply reply;
  const auto status = stub_for(address)->Sync(prepare(context, std::chrono::milliseconds(1000)), request, &reply);
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      log_.warn("cluster: seed {} refused this node: {}", address, one_line(status.error_message()));
    } else {
      log_.debug("cluster: seed {} did not answer: {}", address, one_line(status.error_message()));
    }
    return false;
  }
  if (reply.node_id() == config_.node_id) return false;  // this node under another address
  std::lock_guard lock(mutex_);
  swim_.apply(read_gossip(reply.members()), Clock::now());
  return true;
}

v1::PingReply Membership::on_ping(const v1::PingRequest& request) {
  v1::PingReply reply;
  {
    std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    if (!request.from_address().empty()) {
      swim_.apply({MemberUpdate{request.from_node(), request.from_address(), request.incarnation(),
                                MemberState::alive}},
                  now);
    }
    swim_.apply(read_gossip(request.gossip()), now);
    reply.set_node_id(config_.node_id);
    reply.set_incarnation(swim_.incarnation());
    add_gossip(gossip_for(request.from_node()), *reply.mutable_gossip());
  }
  notify();
  return reply;
}

void Membership::on_ping_req(const v1::PingReqRequest& request,
                             std::function<void(grpc::Status, v1::PingReply)> done) {
  auto call = std::make_shared<MembershipCall<v1::PingRequest, v1::PingReply>>();
  {
    std::lock_guard lock(mutex_);
    swim_.apply(read_gossip(request.gossip()), Clock::now());
    call->request.set_from_node(config_.node_id);
    call->request.set_from_address(config_.address);
    call->request.set_incarnation(swim_.incarnation());
    add_gossip(gossip_for(request.target_node()), *call->request.mutable_gossip());
  }
  notify();
  const auto timeout = std::clamp<std::chrono::milliseconds>(std::chrono::milliseconds(request.timeout_ms()),
                                                             std::chrono::milliseconds(10), config_.ping_timeout);
  call->stub = stub_for(request.target_address());
  prepare(call->context, timeout);
  call->stub->async()->Ping(
      &call->context, &call->request, &call->reply,
      [call, done = std::move(done), target = request.target_node()](grpc::Status status) {
        if (status.ok() && call->reply.node_id() != target) {
          status = grpc::Status(grpc::StatusCode::NOT_FOUND, "another node answers at that address");
        }
        done(status.ok() ? grpc::Status::OK : grpc::Status(grpc::StatusCode::UNAVAILABLE, "target did not answer"),
             call->reply);
      });
}

v1::SyncReply Membership::on_sync(const v1::SyncRequest& request) {
  v1::SyncReply reply;
  {
    std::lock_guard lock(mutex_);
    swim_.apply(read_gossip(request.members()), Clock::now());
    reply.set_node_id(config_.node_id);
    add_gossip(swim_.snapshot(), *reply.mutable_members());
  }
  notify();
  return reply;
}

std::vector<Member> Membership::members() const {
  std::lock_guard lock(mutex_);
  return swim_.members();
}

bool Membership::has_quorum() const {
  size_t up = 0;
  size_t counted = 0;
  for (const auto& m : members()) {
    if (m.state == MemberState::left) continue;
    ++counted;
    if (m.state != MemberState::dead) ++up;
  }
  return up * 2 > counted;
}

std::vector<Member> Membership::live_peers() const {
  std::vector<Member> peers;
  for (auto& m : members()) {
    if (!m.self && m.state == MemberState::alive) peers.push_back(std::move(m));
  }
  return peers;
}

bool Membership::joined() const {
  std::lock_guard lock(mutex_);
  return joined_;
}

uint64_t Membership::refused_calls() const {
  std::lock_guard lock(mutex_);
  return refused_;
}

void Membership::count_refused(const std::string& peer) {
  std::lock_guard lock(mutex_);
  ++refused_;
  // Logged, but not once per call: a misconfigured peer calls every second.
  if (refused_log_.allow()) {
    log_.warn("cluster: refused a call from {}: missing or wrong cluster secret ({} refused so far)", peer, refused_);
  }
}

void Membership::notify() {
  std::lock_guard order(notify_mutex_);
  std::vector<Change> changes;
  {
    std::lock_guard lock(mutex_);
    changes.swap(changes_);
  }
  for (const auto& c : changes) {
    if (c.before) {
      log_.info("cluster: member {} ({}) is {}, was {}", c.member.node_id, c.member.address,
                to_string(c.member.state), to_string(*c.before));
    } else {
      log_.info("cluster: member {} ({}) found, {}", c.member.node_id, c.member.address, to_string(c.member.state));
    }
    for (const auto& listener : listeners_) listener(c.member, c.before);
  }
}

}  // namespace starling::cluster
