#include "cluster/routing/peer_link.h"

#include <algorithm>

#include "broker/mqtt/topic.h"
#include "broker/stored_message.h"
#include "cluster/routing/cluster_forwarder.h"
#include "cluster/rpc/cluster_secret.h"
#include "cluster/rpc/peer_channel.h"

namespace starling::cluster {
namespace {

constexpr auto kRouteCallTimeout = std::chrono::milliseconds(2000);
constexpr auto kForwardCallTimeout = std::chrono::milliseconds(5000);
constexpr size_t kMaxBatchBytes = 4 * 1024 * 1024;

}  // namespace

v1::ForwardedMessage to_forwarded(const broker::Message& m, const broker::ClockPair& now) {
  storage::StoredMessage s = broker::to_stored(m, now);
  v1::ForwardedMessage f;
  f.set_topic(std::move(s.topic));
  f.set_payload(std::move(s.payload));
  f.set_qos(s.qos);
  f.set_retain(s.retain);
  f.set_properties(std::move(s.properties));
  f.set_expires_at_ms(s.expires_at_ms);
  return f;
}

broker::MessagePtr from_forwarded(const v1::ForwardedMessage& f, const broker::ClockPair& now) {
  // A peer's message is checked as a client's would be: garbage goes no
  // further than the call that brought it.
  if (f.qos() > 2 || !mqtt::validate_topic_name(f.topic())) return nullptr;
  return broker::from_stored(storage::StoredMessage{f.topic(), f.payload(), static_cast<uint8_t>(f.qos()), f.retain(),
                                                    f.properties(), f.expires_at_ms()},
                             now, /*from_peer=*/true);
}

PeerLink::PeerLink(PeerLinkConfig config, RouteTable& routes, ClusterForwarder& owner, PeerCounters& counters,
                   broker::LatencyHistogram& latency, spdlog::logger& log)
    : config_(std::move(config)),
      routes_(routes),
      owner_(owner),
      counters_(counters),
      latency_(latency),
      log_(log),
      stub_(v1::Routing::NewStub(peer_channel(config_.address))) {}

PeerLink::~PeerLink() { stop(); }

void PeerLink::start() { thread_ = std::thread([this] { run(); }); }

void PeerLink::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    if (in_call_) in_call_->TryCancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::deque<Item> left;
  {
    std::lock_guard lock(mu_);
    left.swap(queue_);
    queued_qos0_ = 0;
  }
  for (auto& item : left) {
    if (item.done) {
      item.done(false);
    } else {
      counters_.dropped.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void PeerLink::wake() {
  {
    std::lock_guard lock(mu_);
    routes_dirty_ = true;
  }
  cv_.notify_all();
}

bool PeerLink::enqueue(const broker::MessagePtr& message, broker::Forwarder::Done done, ForwardMeta meta) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) {
      if (!done) {
        counters_.dropped.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
    } else if (!done) {  // nobody waits for it: it may be dropped
      if (queued_qos0_ >= config_.max_queued_qos0) {
        counters_.dropped.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      ++queued_qos0_;
    }
    if (!stopping_) {
      queue_.push_back(Item{message, std::move(done), std::move(meta)});
      done = nullptr;
    }
  }
  if (done) done(false);  // the link is gone: so is the peer
  cv_.notify_all();
  return true;
}

std::optional<RouteVersion> PeerLink::acked() const {
  std::lock_guard lock(mu_);
  return acked_;
}

uint64_t PeerLink::repairs() const {
  std::lock_guard lock(mu_);
  return repairs_;
}

bool PeerLink::begin_call(grpc::ClientContext& context) {
  std::lock_guard lock(mu_);
  if (stopping_) return false;
  in_call_ = &context;
  return true;
}

void PeerLink::end_call() {
  std::lock_guard lock(mu_);
  in_call_ = nullptr;
}

void PeerLink::wait_for(std::chrono::milliseconds pause) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, pause, [this] { return stopping_; });
}

void PeerLink::run() {
  auto next_digest = std::chrono::steady_clock::now();
  for (;;) {
    bool routes = false;
    bool digest = false;
    bool batch = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_digest, [this] { return stopping_ || routes_dirty_ || !queue_.empty(); });
      if (stopping_) return;
      digest = std::chrono::steady_clock::now() >= next_digest;
      routes = routes_dirty_ || digest;
      routes_dirty_ = false;
      batch = !queue_.empty();
    }
    bool ok = true;
    if (routes) {
      if (digest) next_digest = std::chrono::steady_clock::now() + config_.digest_interval;
      if (!send_routes(digest)) {
        std::lock_guard lock(mu_);
        routes_dirty_ = true;
        ok = false;
      }
    }
    if (batch && ok && !send_batch()) ok = false;
    if (!ok) wait_for(std::chrono::milliseconds(200));  // the peer is unreachable: retry soon, not at once
  }
}

bool PeerLink::send_routes(bool digest) {
  const auto known = acked();
  RouteDelta d = routes_.delta_since(known);
  if (!d.snapshot && !digest && d.from_version == d.to_version) return true;  // nothing new
  v1::RouteUpdate update;
  update.set_from_node(config_.self_id);
  update.set_epoch(d.epoch);
  update.set_from_version(d.from_version);
  update.set_to_version(d.to_version);
  update.set_snapshot(d.snapshot);
  for (auto& f : d.added) update.add_added(std::move(f));
  for (auto& f : d.removed) update.add_removed(std::move(f));

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kRouteCallTimeout);
  attach_secret(context, config_.secret);
  v1::RouteAck ack;
  if (!begin_call(context)) return false;
  const auto status = stub_->UpdateRoutes(&context, update, &ack);
  end_call();
  if (!status.ok()) {
    if (!failing_) log_.info("cluster: routes to {} not delivered: {}", config_.peer_id, status.error_message());
    failing_ = true;
    return false;
  }
  if (failing_) log_.info("cluster: {} reachable again", config_.peer_id);
  failing_ = false;
  {
    std::lock_guard lock(mu_);
    if (ack.need_snapshot()) {
      // It lacks what the delta starts from (it restarted, or missed one):
      // everything, at once.
      acked_.reset();
      routes_dirty_ = true;
      if (known) ++repairs_;
    } else {
      acked_ = RouteVersion{d.epoch, d.to_version};
    }
  }
  if (!ack.need_snapshot()) owner_.routes_acknowledged();
  return true;
}

bool PeerLink::send_batch() {
  std::vector<std::pair<broker::MessagePtr, ForwardMeta>> batch;
  {
    std::lock_guard lock(mu_);
    size_t bytes = 0;
    for (const auto& item : queue_) {
      if (batch.size() >= config_.max_batch || (bytes > 0 && bytes + item.message->payload.size() > kMaxBatchBytes)) {
        break;
      }
      bytes += item.message->payload.size();
      batch.emplace_back(item.message, item.meta);
    }
  }
  v1::ForwardBatch request;
  request.set_from_node(config_.self_id);
  const broker::ClockPair now;
  for (const auto& [m, meta] : batch) {
    auto* f = request.add_messages();
    *f = to_forwarded(*m, now);
    f->set_replicate_only(!meta.deliver);
    for (const auto& g : meta.shared_groups) f->add_shared_groups(g);
    if (meta.retained) {
      f->mutable_retained()->set_hlc(meta.retained->hlc);
      f->mutable_retained()->set_origin(meta.retained->origin);
    }
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kForwardCallTimeout);
  attach_secret(context, config_.secret);
  v1::ForwardAck ack;
  if (!begin_call(context)) return false;
  const auto started = std::chrono::steady_clock::now();
  const auto status = stub_->Forward(&context, request, &ack);
  end_call();
  if (!status.ok()) {
    if (!failing_) log_.info("cluster: forwarding to {} failed: {}", config_.peer_id, status.error_message());
    failing_ = true;
    return false;
  }
  failing_ = false;
  latency_.observe(std::chrono::steady_clock::now() - started);
  std::vector<bool> refused(batch.size(), false);
  for (uint32_t i : ack.refused()) {
    if (i < refused.size()) refused[i] = true;
  }
  std::vector<Item> done;
  {
    std::lock_guard lock(mu_);
    // Only this thread takes from the front: the batch is still there.
    for (size_t i = 0; i < batch.size() && !queue_.empty(); ++i) {
      if (!queue_.front().done && queued_qos0_ > 0) --queued_qos0_;
      done.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  counters_.sent.fetch_add(done.size(), std::memory_order_relaxed);
  for (size_t i = 0; i < done.size(); ++i) {
    if (refused[i]) counters_.refused.fetch_add(1, std::memory_order_relaxed);
    if (done[i].done) done[i].done(!refused[i]);
  }
  return true;
}

}  // namespace starling::cluster
