#include "cluster/cluster_node.h"

#include <unistd.h>

#include <algorithm>
#include <random>
#include <thread>
#include <variant>

#include "broker/metrics.h"
#include "cluster/membership/seeds.h"
#include "cluster/rpc/peer_channel.h"

namespace starling::cluster {
namespace {

// The largest message a peer may send; more is refused by gRPC before it
// reaches us.
constexpr int kMaxMessageBytes = 16 * 1024 * 1024;

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

}  // namespace

ClusterNode::Started ClusterNode::start(const broker::Config& config, spdlog::logger& log) {
  auto node = std::make_unique<ClusterNode>();
  const broker::HostPort& listen = *config.cluster_listen;
  auto credentials = load_peer_credentials(config.cluster_tls_cert, config.cluster_tls_key, config.cluster_tls_ca);
  if (auto* error = std::get_if<std::string>(&credentials)) return Started{nullptr, "--cluster-tls-*: " + *error};
  PeerCredentials& peers = std::get<PeerCredentials>(credentials);
  node->credentials_ = peers.channel;

  // Versions of this node's routes count from 0 in a new epoch each start.
  const uint64_t epoch = std::random_device{}() ^
                         static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  node->routes_ = std::make_unique<RouteTable>(epoch);
  node->retained_ = std::make_unique<RetainedVersions>(config.node_id);
  ForwardingConfig fc;
  fc.node_id = config.node_id;
  fc.secret = config.cluster_secret;
  fc.credentials = peers.channel;
  fc.quorum = [n = node.get(), copies = config.replication_factor > 1] { return n->may_acknowledge(copies); };
  node->forwarder_ = std::make_unique<ClusterForwarder>(std::move(fc), *node->routes_, *node->retained_, log);
  // Refused calls are counted in one place whichever service they called.
  const OnRefused refused = [n = node.get()](const std::string& peer) {
    if (n->membership_) n->membership_->count_refused(peer);
  };
  node->membership_service_ = std::make_unique<MembershipService>(config.cluster_secret);
  // Called once the node serves (membership_ and the rest are set by then).
  auto relay = [n = node.get()](const MovedSessions::Relay& r, std::function<void(bool)> done) {
    auto peer = n->live_peer(r.node);
    if (!peer) return done(false);  // gone: the publisher is not acknowledged, and sends it again
    relay_to_peer(*peer, n->node_id_, n->secret_, n->credentials_, r.client_id, r.delivery,
                  std::chrono::milliseconds(2000), std::move(done));
  };
  node->routing_service_ = std::make_unique<RoutingService>(config.cluster_secret, *node->routes_, *node->forwarder_,
                                                            *node->retained_, node->moved_, std::move(relay), refused,
                                                            log);
  node->fence_ = std::make_unique<ConnectFence>(config.node_id);
  ReplicaRules rules;
  rules.member_alive = [n = node.get()](const std::string& id) { return n->member_up(id); };
  rules.new_epoch = [n = node.get()] { return n->fence_->stamp(); };
  rules.sessions_ready = [n = node.get()] { return n->sessions_ready(); };
  // Set before the membership starts, so before any peer can send this.
  rules.restarted = [n = node.get()](const std::string& peer) {
    if (n->replicator_) n->replicator_->refill(peer);
  };
  rules.refuses_copies_from = [n = node.get()](const std::string& peer, const std::string& client_id) {
    return n->replicator_ && n->replicator_->refuses_copy_from(peer, client_id);
  };
  node->sessions_service_ = std::make_unique<SessionsService>(config.cluster_secret, *node->fence_, *node->forwarder_,
                                                              node->moved_, refused, std::move(rules));
  node->node_id_ = config.node_id;
  node->secret_ = config.cluster_secret;
  node->log_ = &log;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen.to_string(), peers.server, &port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.RegisterService(node->membership_service_.get());
  builder.RegisterService(node->routing_service_.get());
  builder.RegisterService(node->sessions_service_.get());
  node->server_ = builder.BuildAndStart();
  if (!node->server_ || port == 0) {
    const char* tls = peers.channel ? " (or --cluster-tls-cert/--cluster-tls-key are not a valid pair)" : "";
    return Started{nullptr, "--cluster-listen " + listen.to_string() + ": cannot listen there" + tls};
  }
  // Tests and scripts read the port from this line.
  log.info("listener cluster bound to {}{}", broker::HostPort{listen.host, static_cast<uint16_t>(port)}.to_string(),
           peers.channel ? " (mutual TLS)" : "");

  // What peers dial: --cluster-advertise, else the listen address with the
  // port it got (a wildcard host becomes this host's name).
  broker::HostPort advertised = config.cluster_advertise.value_or(listen);
  if (!config.cluster_advertise) {
    advertised.port = static_cast<uint16_t>(port);
    if (advertised.is_wildcard()) advertised.host = host_name();
  }
  node->address_ = advertised.to_string();

  MembershipConfig mc;
  mc.node_id = config.node_id;
  mc.address = node->address_;
  mc.secret = config.cluster_secret;
  mc.credentials = peers.channel;
  node->membership_ = std::make_unique<Membership>(
      std::move(mc), [seeds = config.join] { return resolve_seeds(seeds); }, log);
  if (config.replication_factor > 1) {
    ReplicationConfig rc;
    rc.node_id = config.node_id;
    rc.factor = config.replication_factor;
    rc.secret = config.cluster_secret;
    rc.credentials = peers.channel;
    auto* n = node.get();
    node->replicator_ = std::make_unique<SessionReplicator>(
        std::move(rc), *node->membership_, *node->forwarder_, [n] { return n->fence_->stamp(); },
        [n](const Member& back) {
          if (auto* sessions = n->sessions_.load()) n->drop_moved_sessions(*sessions, {back}, /*online_too=*/true);
          // Until this node has the member's routes again, its messages went
          // to the copies here only (at most a few seconds).
          for (int i = 0; i < 60 && !n->routes_->version_of(back.node_id); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
          }
          n->replicator_->send_copies_back(back);
          // And once more when the other nodes surely route to it too.
          n->forwarder_->after(std::chrono::seconds(3), [n, back] { n->replicator_->send_copies_back(back); });
        },
        log);
  }
  node->membership_->on_change([n = node.get(), forwarder = node->forwarder_.get(),
                                replicator = node->replicator_.get()](const Member& m,
                                                                      std::optional<MemberState> before) {
    // Read on every QoS 1/2 PUBLISH: kept here rather than counted each time.
    n->quorum_.store(n->membership_->has_quorum(), std::memory_order_relaxed);
    forwarder->member_changed(m);
    if (replicator) replicator->member_changed(m, before);
  });
  node->retained_sync_ =
      std::make_unique<RetainedSync>(*node->membership_, *node->retained_, config.cluster_secret, peers.channel, log);
  node->membership_service_->attach(*node->membership_);
  node->membership_->start();
  log.info("cluster: node {} advertises {}; joining through {}", config.node_id, node->address_,
           config.join.empty() ? std::string{"no seeds"} : std::to_string(config.join.size()) + " seed(s)");
  return Started{std::move(node), {}};
}

ClusterNode::~ClusterNode() { leave(); }

void ClusterNode::serve(broker::SessionRegistry& sessions) {
  // Before any message is delivered: a shared group's pick goes to its copies.
  if (replicator_) sessions.set_replication(replicator_.get());
  routing_service_->attach(&sessions);
  sessions_service_->attach(&sessions);
  sessions_ = &sessions;
  retained_sync_->start(sessions, [this, &sessions] {
    drop_moved_sessions(sessions, membership_->live_peers());
    sessions_checked_ = true;
    // Only now: a stale session read from disk must not be copied out.
    if (replicator_) replicator_->start(sessions);
  });
}

void ClusterNode::leave() {
  std::call_once(left_, [this] {
    leaving_.store(true);
    if (retained_sync_) retained_sync_->stop();
    if (membership_) membership_->leave();
    if (replicator_) replicator_->stop();
    // No more messages in or out; calls in flight finish (or are cancelled)
    // before the node's parts go.
    if (routing_service_) routing_service_->attach(nullptr);
    if (sessions_service_) sessions_service_->attach(nullptr);
    if (forwarder_) forwarder_->stop();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(1000));
    // Takeovers under way call back into the broker: they end (each is
    // bounded) while it is still there.
    std::unique_lock lock(takeovers_mu_);
    takeovers_cv_.wait_for(lock, std::chrono::seconds(3), [this] { return takeovers_pending_ == 0; });
  });
}

void ClusterNode::take_session(const std::string& client_id, bool clean_start, TakeoverDone done) {
  const bool joined = membership_->joined() && sessions_ready();
  if (replicator_ && !clean_start && (!quorum_.load(std::memory_order_relaxed) || !joined)) {
    // The other side of a partition may have taken the session over; a
    // node still joining does not know where the session is.
    log_->warn("cluster: CONNECT of {} refused for now: this node {}", client_id,
               joined ? "sees less than half of the cluster" : "has not joined the cluster yet");
    takeovers_.refused.fetch_add(1, std::memory_order_relaxed);
    return done(Takeover{true, std::nullopt, 0, {}});
  }
  const std::vector<Member> peers = membership_->live_peers();
  // Registered before the others are asked: of two CONNECTs at once on two
  // nodes, each side sees the other's, and both agree which is newer.
  const ConnectEpoch epoch = fence_->begin(client_id);
  takeover_began();
  take_from_peers(peers, secret_, credentials_, client_id, clean_start, epoch, std::chrono::milliseconds(2000),
                  takeovers_, *log_,
                  [this, client_id, clean_start, epoch, peers, done = std::move(done)](PeersAnswer answer) {
                    std::string waiting = clean_start ? std::string{} : owner_unanswered(client_id, answer, peers);
                    if (waiting.empty()) waiting = answer.not_member_yet;
                    if (answer.superseded || !waiting.empty()) {
                      fence_->end(client_id, epoch);
                      takeovers_.refused.fetch_add(1, std::memory_order_relaxed);
                      if (answer.superseded) {
                        log_->info("cluster: CONNECT of {} refused: a newer one on another node wins", client_id);
                      } else if (waiting == answer.not_member_yet) {
                        log_->warn("cluster: CONNECT of {} refused for now: {} does not see this node as live "
                                   "yet (it came back a moment ago)",
                                   client_id, waiting);
                      } else {
                        log_->warn("cluster: CONNECT of {} refused for now: {}, which may have its session, "
                                   "did not answer; once it does, or is declared dead, the client gets it",
                                   client_id, waiting);
                      }
                      done(Takeover{true, std::nullopt, 0, {}});
                    } else {
                      if (!answer.handed && !clean_start) {
                        adopt_local_copy(client_id, epoch.hlc, answer.replica_owners.empty());
                      }
                      // The epoch stays registered until the session is open
                      // here (connected()): a newer CONNECT elsewhere asking
                      // meanwhile finds it and wins.
                      done(Takeover{false, std::move(answer.handed), epoch.hlc, std::move(answer.held_by)});
                    }
                    takeover_ended();
                  });
}

std::string ClusterNode::owner_unanswered(const std::string& client_id, const PeersAnswer& answer,
                                          const std::vector<Member>& asked) const {
  if (answer.handed) return {};
  const auto unanswered = [&](const std::string& owner) {
    return std::find(answer.unanswered.begin(), answer.unanswered.end(), owner) != answer.unanswered.end();
  };
  // A peer's copy: its owner is alive as far as that peer knows. Not asked
  // here (dead as far as this node knows): the peer adopts it soon.
  const auto was_asked = [&](const std::string& owner) {
    return std::any_of(asked.begin(), asked.end(), [&](const Member& m) { return m.node_id == owner; });
  };
  for (const auto& owner : answer.replica_owners) {
    if (owner != node_id_ && (unanswered(owner) || !was_asked(owner))) return owner;
  }
  // A peer that did not answer may hold the session or a copy of it: better
  // a CONNECT refused for now than a session resumed empty.
  if (replicator_ && !answer.unanswered.empty()) return answer.unanswered.front();
  // The copy here (or one read back from disk): its owner not asked
  // because it is suspect (not dead yet).
  if (auto* sessions = sessions_.load()) {
    std::string owner;
    if (auto copy = sessions->replica_of(client_id)) {
      owner = copy->owner;
    } else if (auto dormant = sessions->dormant_of(client_id)) {
      owner = dormant->owner;
    }
    if (!owner.empty() && (unanswered(owner) || (!was_asked(owner) && member_up(owner)))) return owner;
  }
  return {};
}

void ClusterNode::adopt_local_copy(const std::string& client_id, uint64_t epoch, bool no_other_copy) {
  auto* sessions = sessions_.load();
  if (sessions == nullptr) return;
  auto copy = sessions->replica_of(client_id);
  if (!copy) {
    // Only a copy read back from disk: it is the session when nobody else
    // has one or a copy of it, and its owner is gone (both died).
    auto dormant = sessions->dormant_of(client_id);
    if (dormant && no_other_copy && !member_up(dormant->owner) && sessions->promote_dormant(client_id, epoch)) {
      log_->info("cluster: client {}'s session resumed from the copy read back from disk here: its owner {} is gone",
                 client_id, dormant->owner);
    }
    return;
  }
  // The owner answered without the session (it ended there) or is gone:
  // a copy whose owner is gone is the session now; any other is stale
  // (SessionRegistry::open drops it).
  if (!member_up(copy->owner) && sessions->promote(client_id, epoch)) {
    log_->info("cluster: client {}'s session resumed from the copy here: its owner {} is gone", client_id,
               copy->owner);
  }
}

bool ClusterNode::may_acknowledge(bool copies) {
  // Until it has every live node's routes (after a start or restart), a
  // message published here could miss a subscriber elsewhere.
  if (!synced_.load(std::memory_order_relaxed)) {
    if (!not_ready().empty()) return false;
    synced_.store(true, std::memory_order_relaxed);
  }
  return !copies || quorum_.load(std::memory_order_relaxed);
}

std::optional<Member> ClusterNode::live_peer(const std::string& node_id) const {
  for (auto& m : membership_->live_peers()) {
    if (m.node_id == node_id) return std::move(m);
  }
  return std::nullopt;
}

bool ClusterNode::sessions_ready() const {
  return sessions_checked_.load() && (!replicator_ || replicator_->resynced());
}

bool ClusterNode::member_up(const std::string& node_id) const {
  for (const auto& m : membership_->members()) {
    if (m.node_id == node_id) return is_up(m.state);
  }
  return false;
}

void ClusterNode::takeover_began() {
  std::lock_guard lock(takeovers_mu_);
  ++takeovers_pending_;
}

void ClusterNode::takeover_ended() {
  std::lock_guard lock(takeovers_mu_);
  if (--takeovers_pending_ == 0) takeovers_cv_.notify_all();
}

void ClusterNode::release_session(const std::string& held_by, const std::string& client_id, uint64_t ticket,
                                  ReleaseDone done) {
  if (leaving_.load()) return done({});
  auto peer = live_peer(held_by);
  if (!peer) {
    log_->warn("cluster: {}, which held client {}'s session, is gone; what it queued meanwhile is lost", held_by,
               client_id);
    return done({});
  }
  takeover_began();
  // What this node forwarded to the holder before it routed the session's
  // messages here must be there before the release: the holder queues it.
  forwarder_->after_forwards_answered(std::chrono::milliseconds(1000), [this, peer = *peer, client_id, ticket,
                                                                         done = std::move(done)]() mutable {
    release_from_peer(peer, secret_, credentials_, client_id, ConnectEpoch{ticket, node_id_},
                      std::chrono::milliseconds(2000), *log_,
                      [this, done = std::move(done)](std::vector<broker::Delivery> tail) {
                        done(std::move(tail));
                        takeover_ended();
                      });
  });
}

void ClusterNode::drop_moved_sessions(broker::SessionRegistry& sessions, const std::vector<Member>& peers,
                                      bool online_too) {
  const auto restored = sessions.offline_epochs(online_too);
  if (restored.empty()) return;
  size_t dropped = 0;
  for (const auto& peer : peers) {
    std::optional<std::vector<std::pair<std::string, uint64_t>>> moved;
    for (int attempt = 0; attempt < 3 && !moved && !leaving_.load(); ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
      moved = find_moved_sessions(peer, secret_, credentials_, restored, node_id_);
    }
    if (!moved) {
      log_->warn("cluster: could not ask {} which sessions read from disk here moved on", peer.node_id);
      continue;
    }
    for (const auto& [id, epoch] : *moved) dropped += sessions.drop_stale(id, epoch, online_too) ? 1 : 0;
  }
  log_->info("cluster: {} of {} {}sessions here had moved on to other nodes ({} asked); dropped here", dropped,
             restored.size(), online_too ? "" : "offline ", peers.size());
}

bool ClusterNode::connected(const std::string& client_id, uint64_t ticket) {
  if (fence_->end(client_id, ConnectEpoch{ticket, node_id_})) return true;
  takeovers_.refused.fetch_add(1, std::memory_order_relaxed);
  log_->info("cluster: CONNECT of {} refused: a newer one on another node came in meanwhile", client_id);
  return false;
}

std::vector<broker::ClusterMember> ClusterNode::members() const {
  std::vector<broker::ClusterMember> out;
  for (const auto& m : membership_->members()) {
    out.push_back(broker::ClusterMember{m.node_id, m.address, std::string{to_string(m.state)}, m.incarnation, m.self});
  }
  return out;
}

std::vector<std::string> ClusterNode::not_ready() const {
  if (!membership_->joined()) return {"joining: no seed has answered yet"};
  // Synced: every live member's routes are here, so a message published on
  // this node reaches subscribers anywhere.
  std::vector<std::string> reasons;
  if (!retained_sync_->synced()) reasons.emplace_back("syncing: retained messages");
  if (!sessions_ready()) reasons.emplace_back("syncing: sessions read from disk");
  for (const auto& m : membership_->live_peers()) {
    if (!routes_->version_of(m.node_id)) reasons.push_back("syncing: no routes from " + m.node_id + " yet");
  }
  return reasons;
}

void ClusterNode::collect_metrics(std::vector<prometheus::MetricFamily>& out) const {
  using prometheus::MetricType;
  auto refused = broker::metric_family("starling_cluster_refused_calls_total",
                                       "Node-to-node calls refused for a missing or wrong cluster secret.",
                                       MetricType::Counter);
  broker::add_sample(refused, static_cast<double>(membership_->refused_calls()));
  out.push_back(std::move(refused));
  const auto probes = membership_->probes();
  auto probed = broker::metric_family("starling_cluster_probes_total",
                                      "Failure-detector probes of other members, by result: direct (answered a "
                                      "ping), indirect (answered only through another member), failed.",
                                      MetricType::Counter);
  broker::add_sample(probed, static_cast<double>(probes.direct), {{"result", "direct"}});
  broker::add_sample(probed, static_cast<double>(probes.indirect), {{"result", "indirect"}});
  broker::add_sample(probed, static_cast<double>(probes.failed), {{"result", "failed"}});
  out.push_back(std::move(probed));
  forwarder_->collect_metrics(out);
  if (replicator_) replicator_->collect_metrics(out);
  auto takeovers = broker::metric_family(
      "starling_cluster_takeovers_total",
      "CONNECTs here whose client had a connection or session on another node, by result: taken (closed there, "
      "the session handed over unless clean start), failed (a live node did not answer in time), refused (a newer "
      "CONNECT of the client on another node won).",
      MetricType::Counter);
  broker::add_sample(takeovers, static_cast<double>(takeovers_.taken.load()), {{"result", "taken"}});
  broker::add_sample(takeovers, static_cast<double>(takeovers_.failed.load()), {{"result", "failed"}});
  broker::add_sample(takeovers, static_cast<double>(takeovers_.refused.load()), {{"result", "refused"}});
  out.push_back(std::move(takeovers));
}

}  // namespace starling::cluster
