#include "cluster/routing/cluster_forwarder.h"

#include <algorithm>

#include "broker/metrics.h"
#include "broker/count_down.h"
#include "cluster/routing/peer_link.h"

namespace starling::cluster {
namespace {

bool node_local(std::string_view topic) { return topic.starts_with("$SYS/"); }

}  // namespace

ClusterForwarder::ClusterForwarder(ForwardingConfig config, RouteTable& routes, RetainedVersions& retained,
                                   spdlog::logger& log)
    : config_(std::move(config)), routes_(routes), retained_(retained), log_(log) {
  ticker_ = std::thread([this] { tick(); });
}

ClusterForwarder::~ClusterForwarder() { stop(); }

void ClusterForwarder::stop() {
  {
    std::lock_guard lock(tick_mu_);
    stopping_ = true;
  }
  tick_cv_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  std::map<std::string, std::shared_ptr<PeerLink>, std::less<>> links;
  {
    std::unique_lock lock(links_mu_);
    links.swap(links_);
  }
  for (auto& [id, link] : links) link->stop();
  check_waiters(/*timeouts=*/false);  // with no links left, every waiter goes
  check_pending(/*all=*/true);
}

void ClusterForwarder::subscribed(std::string_view filter) {
  routes_.add_local(filter);
  std::shared_lock lock(links_mu_);
  for (auto& [id, link] : links_) link->wake();
}

void ClusterForwarder::unsubscribed(std::string_view filter) {
  routes_.remove_local(filter);
  std::shared_lock lock(links_mu_);
  for (auto& [id, link] : links_) link->wake();
}

void ClusterForwarder::when_routes_known(Done done) {
  {
    std::lock_guard lock(waiters_mu_);
    waiters_.push_back(Waiter{routes_.local_version(), std::chrono::steady_clock::now() + config_.route_wait,
                              std::move(done)});
  }
  check_waiters(false);
}

void ClusterForwarder::routes_acknowledged() { check_waiters(false); }

void ClusterForwarder::forwards_answered() { check_pending(false); }

void ClusterForwarder::after_forwards_answered(std::chrono::milliseconds timeout, std::function<void()> done) {
  // Each link's count of messages handed to it now: done once it has
  // answered that many.
  std::vector<std::pair<std::shared_ptr<PeerLink>, uint64_t>> marks;
  {
    // Exclusive: a forward matches and hands to its links under the shared
    // lock, so one that matched the routes as they were before the caller's
    // change is counted here, not handed a moment after.
    std::unique_lock lock(links_mu_);
    for (const auto& [id, link] : links_) marks.emplace_back(link, link->handed());
  }
  auto answered = [marks = std::move(marks)] {
    return std::all_of(marks.begin(), marks.end(),
                       [](const auto& m) { return m.first->answered_through() >= m.second; });
  };
  when(answered, timeout, [this, answered, timeout, done = std::move(done)] {
    if (!answered() && unanswered_logged_.allow()) {
      log_.warn("cluster: forwarded messages not answered within {} ms; going on without them (a session moving "
                "now may miss one of them)",
                timeout.count());
    }
    done();
  });
}

void ClusterForwarder::when(std::function<bool()> ready, std::chrono::milliseconds timeout,
                            std::function<void()> done) {
  if (ready()) return done();
  {
    std::lock_guard lock(pending_mu_);
    pending_.push_back(Pending{std::move(ready), std::chrono::steady_clock::now() + timeout, std::move(done)});
  }
  check_pending(false);  // it may hold by now
}

void ClusterForwarder::check_pending(bool all) {
  std::vector<std::function<void()>> due;
  {
    std::lock_guard lock(pending_mu_);
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(pending_, [&](Pending& p) {
      if (!all && now < p.deadline && !p.ready()) return false;
      due.push_back(std::move(p.done));
      return true;
    });
  }
  for (auto& done : due) done();
}

void ClusterForwarder::check_waiters(bool timeouts) {
  std::vector<std::optional<RouteVersion>> acked;
  {
    std::shared_lock lock(links_mu_);
    for (const auto& [id, link] : links_) acked.push_back(link->acked());
  }
  // Trim what every live peer has.
  uint64_t everyone_has = UINT64_MAX;
  const auto current = routes_.local_version();
  for (const auto& a : acked) everyone_has = std::min(everyone_has, a && a->epoch == current.epoch ? a->version : 0);
  if (everyone_has != UINT64_MAX && everyone_has > 0) routes_.trim(everyone_has);

  std::vector<Done> ready;
  {
    std::lock_guard lock(waiters_mu_);
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(waiters_, [&](Waiter& w) {
      const bool known = std::all_of(acked.begin(), acked.end(), [&](const auto& a) {
        return a && a->epoch == w.version.epoch && a->version >= w.version.version;
      });
      const bool late = timeouts && now >= w.deadline;
      if (!known && !late) return false;
      if (!known) route_wait_timeouts_.fetch_add(1, std::memory_order_relaxed);
      ready.push_back(std::move(w.done));
      return true;
    });
  }
  // Past the deadline the SUBACK goes anyway (counted): a peer that cannot
  // be reached must not stop subscribing here.
  for (auto& done : ready) done(true);
}

void ClusterForwarder::tick() {
  std::unique_lock lock(tick_mu_);
  while (!tick_cv_.wait_for(lock, std::chrono::milliseconds(50), [this] { return stopping_; })) {
    lock.unlock();
    check_waiters(/*timeouts=*/true);
    check_pending(/*all=*/false);
    {
      std::shared_lock links(links_mu_);
      for (auto& [id, link] : links_) link->check_stalled();
    }
    lock.lock();
  }
}

uint64_t ClusterForwarder::retain(const broker::MessagePtr& message, const std::function<void()>& apply) {
  if (node_local(message->topic)) {
    std::lock_guard lock(local_retain_mu_);
    apply();
    return 0;
  }
  return retained_.stamp(message->topic, apply, /*cleared=*/message->payload.empty());
}

size_t ClusterForwarder::forward(const broker::MessagePtr& message, Done done, uint64_t retained_version) {
  // Before this node has the others' routes, or on the small side of a
  // partition (the other side may have taken its sessions over), a message
  // could miss subscribers: it is not acknowledged (the publisher tries
  // again).
  if (done && message->qos != mqtt::QoS::k0 && !message->from_peer && config_.quorum && !config_.quorum()) {
    done(false);
    return 0;
  }
  struct Target {
    std::shared_ptr<PeerLink> link;
    ForwardMeta meta;
  };
  boost::container::small_vector<Target, 4> targets;
  // Held from the match until the links have the message (see
  // after_forwards_answered).
  std::shared_lock lock(links_mu_);
  if (!message->from_peer && !node_local(message->topic)) {
    auto [nodes, groups] = routes_.matching(message->topic);
    // A group with a member here gets the message here (the router did
    // that); another gets it from one of the nodes with members, in turn.
    std::erase_if(groups, [this](const RouteTable::Group& g) { return routes_.has_local(g.filter); });
    std::optional<RetainedVersion> version;
    if (message->retain && retained_version != 0) version = RetainedVersion{retained_version, retained_.self_id()};
    // A live node whose routes are not here (it came back a moment ago, or
    // was thought dead on stale news) may have subscribers: not acknowledged.
    if (done && message->qos != mqtt::QoS::k0 && config_.quorum) {
      for (const auto& [id, link] : links_) {
        if (!routes_.version_of(id)) {
          lock.unlock();
          done(false);
          return 0;
        }
      }
    }
    const auto target_for = [&](const std::string& id) -> Target* {
      for (auto& t : targets) {
        if (t.link->peer_id() == id) return &t;
      }
      auto it = links_.find(id);
      if (it == links_.end()) return nullptr;
      targets.push_back(Target{it->second, ForwardMeta{false, version, {}, {}}});
      return &targets.back();
    };
    if (version) {
      // Every node keeps every retained message.
      for (const auto& [id, link] : links_) target_for(id);
    }
    for (const auto& node : nodes) {
      if (Target* t = target_for(node)) t->meta.deliver = true;
    }
    for (auto& g : groups) {
      // Members on nodes that are not live are skipped.
      g.nodes.erase(std::remove_if(g.nodes.begin(), g.nodes.end(),
                                   [&](const std::string& id) { return !links_.contains(id); }),
                    g.nodes.end());
      if (g.nodes.empty()) continue;
      const auto pick = g.nodes[group_turn_.fetch_add(1, std::memory_order_relaxed) % g.nodes.size()];
      if (Target* t = target_for(pick)) {
        t->meta.deliver = true;
        t->meta.shared_groups.push_back(std::move(g.filter));
      }
    }
  }
  if (targets.empty()) {
    lock.unlock();
    if (done) done(true);
    return 0;
  }
  // Each learns where else it went: a node a session moved away from passes
  // it on only to a node that did not get it (MovedSessions).
  if (message->qos != mqtt::QoS::k0 && targets.size() > 1) {
    for (auto& t : targets) {
      if (!t.meta.deliver) continue;
      for (const auto& u : targets) {
        if (&u != &t && u.meta.deliver) t.meta.delivered_to.push_back(u.link->peer_id());
      }
    }
  }
  Done each = done ? count_down(targets.size(), std::move(done)) : Done{};
  size_t delivering = 0;
  for (auto& t : targets) {
    delivering += t.meta.deliver ? 1 : 0;
    t.link->enqueue(message, each, std::move(t.meta));
  }
  return delivering;
}

void ClusterForwarder::member_changed(const Member& m) {
  if (m.self) return;
  std::shared_ptr<PeerLink> old;
  std::shared_ptr<PeerLink> fresh;
  const bool gone = is_gone(m.state);
  {
    std::unique_lock lock(links_mu_);
    auto it = links_.find(m.node_id);
    if (gone) {
      if (it != links_.end()) {
        old = std::move(it->second);
        links_.erase(it);
      }
    } else if (it == links_.end() || it->second->address() != m.address) {
      if (it != links_.end()) old = std::move(it->second);
      PeerLinkConfig c;
      c.self_id = config_.node_id;
      c.peer_id = m.node_id;
      c.address = m.address;
      c.secret = config_.secret;
      c.credentials = config_.credentials;
      c.digest_interval = config_.digest_interval;
      c.max_queued_qos0 = config_.max_queued_qos0;
      fresh = std::make_shared<PeerLink>(std::move(c), routes_, *this, counters_for(m.node_id), forward_latency_,
                                         log_);
      links_[m.node_id] = fresh;
    }
  }
  if (old) old->stop();  // its waiting QoS 1/2 forwards fail: their publishers are refused
  if (fresh) fresh->start();
  if (gone) {
    routes_.drop(m.node_id);
    log_.info("cluster: routes of {} dropped ({})", m.node_id, to_string(m.state));
  }
  check_waiters(false);  // a peer gone no longer holds up a SUBACK
}

PeerCounters& ClusterForwarder::counters_for(const std::string& node_id) {
  std::lock_guard lock(counters_mu_);
  auto& c = counters_[node_id];
  if (!c) c = std::make_unique<PeerCounters>();
  return *c;
}

void ClusterForwarder::collect_metrics(std::vector<prometheus::MetricFamily>& out) const {
  using prometheus::MetricType;
  auto sent = broker::metric_family("starling_cluster_forwards_sent_total",
                                    "Messages forwarded to another node and acknowledged by it, by peer.",
                                    MetricType::Counter);
  auto received = broker::metric_family("starling_cluster_forwards_received_total",
                                        "Messages another node forwarded here, by peer.", MetricType::Counter);
  auto dropped = broker::metric_family(
      "starling_cluster_forwards_dropped_total",
      "Messages not forwarded to a peer: QoS 0 beyond the bound for a slow peer, or waiting when it left or died.",
      MetricType::Counter);
  auto refused = broker::metric_family("starling_cluster_forwards_refused_total",
                                       "QoS 1/2 messages a peer could not take (its subscriber's queue was full).",
                                       MetricType::Counter);
  {
    std::lock_guard lock(counters_mu_);
    for (const auto& [id, c] : counters_) {
      broker::add_sample(sent, static_cast<double>(c->sent.load()), {{"peer", id}});
      broker::add_sample(received, static_cast<double>(c->received.load()), {{"peer", id}});
      broker::add_sample(dropped, static_cast<double>(c->dropped.load()), {{"peer", id}});
      broker::add_sample(refused, static_cast<double>(c->refused.load()), {{"peer", id}});
    }
  }
  out.push_back(std::move(sent));
  out.push_back(std::move(received));
  out.push_back(std::move(dropped));
  out.push_back(std::move(refused));
  out.push_back(broker::histogram_family("starling_cluster_forward_duration_seconds",
                                         "How long a peer took to acknowledge a batch of forwarded messages.",
                                         forward_latency_.snapshot()));
  uint64_t repairs = 0;
  {
    std::shared_lock lock(links_mu_);
    for (const auto& [id, link] : links_) repairs += link->repairs();
  }
  auto repaired = broker::metric_family(
      "starling_cluster_route_repairs_total",
      "Full route sets sent because a peer's digest showed it lacked a change (anti-entropy), live peers.",
      MetricType::Counter);
  broker::add_sample(repaired, static_cast<double>(repairs));
  out.push_back(std::move(repaired));
  auto timeouts = broker::metric_family(
      "starling_cluster_route_wait_timeouts_total",
      "SUBACKs sent before every live peer acknowledged the new route, after the bounded wait.", MetricType::Counter);
  broker::add_sample(timeouts, static_cast<double>(route_wait_timeouts_.load()));
  out.push_back(std::move(timeouts));
  auto table = broker::metric_family("starling_cluster_routes", "Routes in the cluster route table, by owner.",
                                     MetricType::Gauge);
  broker::add_sample(table, static_cast<double>(routes_.local_count()), {{"owner", "local"}});
  broker::add_sample(table, static_cast<double>(routes_.remote_count()), {{"owner", "remote"}});
  out.push_back(std::move(table));
}

}  // namespace starling::cluster
