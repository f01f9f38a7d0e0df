#include "cluster/routing/peer_link.h"

#include <algorithm>
#include <random>

#include "broker/mqtt/topic.h"
#include "broker/mqtt/utf8.h"
#include "broker/stored_message.h"
#include "cluster/routing/cluster_forwarder.h"
#include "cluster/rpc/cluster_secret.h"
#include "cluster/rpc/peer_channel.h"

namespace starling::cluster {
namespace {

constexpr auto kRouteCallTimeout = std::chrono::milliseconds(2000);
constexpr size_t kMaxBatchBytes = 4 * 1024 * 1024;
constexpr auto kRetryPause = std::chrono::milliseconds(200);

uint64_t random_link_id() {
  std::random_device random;
  return (static_cast<uint64_t>(random()) << 32) ^ random();
}

v1::ForwardBatch to_batch(const std::string& self_id, uint64_t link_id, uint64_t sequence, const auto& items) {
  v1::ForwardBatch request;
  request.set_from_node(self_id);
  request.set_link_id(link_id);
  request.set_sequence(sequence);
  const broker::ClockPair now;
  for (const auto& item : items) {
    *request.add_messages() = to_forwarded(*item.message, now, item.meta);
  }
  return request;
}

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
  if (m.id.known()) set_message_id(*f.mutable_id(), m.id);
  return f;
}

void set_message_id(v1::MessageId& out, const broker::MessageId& id) {
  out.set_origin(id.origin);
  out.set_publisher(id.publisher);
  out.set_serial(id.serial);
}

broker::MessageId message_id(const v1::MessageId& id) { return {id.origin(), id.publisher(), id.serial()}; }

v1::ForwardedMessage to_forwarded(const broker::Message& m, const broker::ClockPair& now, const ForwardMeta& meta) {
  v1::ForwardedMessage f = to_forwarded(m, now);
  f.set_replicate_only(!meta.deliver);
  for (const auto& g : meta.shared_groups) f.add_shared_groups(g);
  for (const auto& n : meta.delivered_to) f.add_delivered_to(n);
  if (meta.retained) {
    f.mutable_retained()->set_hlc(meta.retained->hlc);
    f.mutable_retained()->set_origin(meta.retained->origin);
  }
  return f;
}

broker::MessagePtr from_forwarded(const v1::ForwardedMessage& f, const broker::ClockPair& now) {
  // A peer's message is checked as a client's would be: garbage goes no
  // further than the call that brought it.
  if (f.qos() > 2 || !mqtt::validate_topic_name(f.topic()) || !mqtt::is_valid_mqtt_utf8(f.topic())) return nullptr;
  return broker::from_stored(storage::StoredMessage{f.topic(), f.payload(), static_cast<uint8_t>(f.qos()), f.retain(),
                                                    f.properties(), f.expires_at_ms()},
                             now, /*from_peer=*/true,
                             message_id(f.id()));
}

struct PeerLink::Stream {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ForwardBatch, v1::ForwardAck>> rw;
  std::thread reader;
};

PeerLink::PeerLink(PeerLinkConfig config, RouteTable& routes, ClusterForwarder& owner, PeerCounters& counters,
                   broker::LatencyHistogram& latency, spdlog::logger& log)
    : config_(std::move(config)),
      routes_(routes),
      owner_(owner),
      counters_(counters),
      latency_(latency),
      log_(log),
      stub_(v1::Routing::NewStub(peer_channel(config_.address, config_.credentials))),
      link_id_(random_link_id()) {}

PeerLink::~PeerLink() { stop(); }

void PeerLink::start() { thread_ = std::thread([this] { run(); }); }

void PeerLink::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    if (in_call_) in_call_->TryCancel();
    if (stream_) stream_->context.TryCancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();  // it closes the stream on its way out
  std::deque<Item> left;
  std::deque<Sent> unanswered;
  {
    std::lock_guard lock(mu_);
    left.swap(queue_);
    unanswered.swap(in_flight_);
    queued_qos0_ = 0;
  }
  const auto fail = [this](Item& item) {
    if (item.done) {
      item.done(false);
    } else {
      counters_.dropped.fetch_add(1, std::memory_order_relaxed);
    }
  };
  for (auto& sent : unanswered) {
    for (auto& item : sent.items) fail(item);
  }
  for (auto& item : left) fail(item);
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
      queue_.push_back(Item{message, std::move(done), std::move(meta), ++handed_});
      done = nullptr;
    }
  }
  if (done) done(false);  // the link is gone: so is the peer
  cv_.notify_all();
  return true;
}

uint64_t PeerLink::handed() const {
  std::lock_guard lock(mu_);
  return handed_;
}

uint64_t PeerLink::answered_through() const {
  std::lock_guard lock(mu_);
  // Batches leave in_flight_ in any order, but each holds a run of items in
  // queue order: the oldest unanswered item heads the first batch left, or
  // else the queue.
  if (!in_flight_.empty() && !in_flight_.front().items.empty()) return in_flight_.front().items.front().index - 1;
  if (batching_ != 0) return batching_ - 1;
  if (!queue_.empty()) return queue_.front().index - 1;
  return handed_;
}

std::optional<RouteVersion> PeerLink::acked() const {
  std::lock_guard lock(mu_);
  return acked_;
}

uint64_t PeerLink::repairs() const {
  std::lock_guard lock(mu_);
  return repairs_;
}

void PeerLink::check_stalled() {
  std::lock_guard lock(mu_);
  if (!stream_ || stream_broken_ || in_flight_.empty()) return;
  if (std::chrono::steady_clock::now() - in_flight_.front().written < config_.answer_timeout) return;
  log_.warn("cluster: {} has not answered a forwarded batch for {} ms; sending again on a new stream",
            config_.peer_id, config_.answer_timeout.count());
  stream_broken_ = true;
  stream_->context.TryCancel();
  cv_.notify_all();
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
  // Something for the thread: a broken stream to replace, messages to send
  // and room in the window (or no stream yet to send them on).
  const auto has_work = [this] {
    if (stream_broken_) return true;
    if (!stream_) return !queue_.empty() || !in_flight_.empty();
    return !queue_.empty() && in_flight_.size() < config_.max_batches_in_flight;
  };
  for (;;) {
    bool routes = false;
    bool digest = false;
    bool broken = false;
    bool messages = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait_until(lock, next_digest, [&] { return stopping_ || routes_dirty_ || has_work(); });
      if (stopping_) break;
      digest = std::chrono::steady_clock::now() >= next_digest;
      routes = routes_dirty_ || digest;
      routes_dirty_ = false;
      broken = stream_broken_;
      messages = !queue_.empty() || !in_flight_.empty();
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
    if (broken) {
      close_stream();
      wait_for(kRetryPause);  // not at once: the peer may be refusing every stream
    }
    if (messages && !stream_) ok = open_stream() && ok;
    while (stream_ && send_batch()) {
    }
    if (!ok) wait_for(kRetryPause);  // the peer is unreachable: retry soon, not at once
  }
  close_stream();
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

bool PeerLink::open_stream() {
  auto stream = std::make_unique<Stream>();
  attach_secret(stream->context, config_.secret);
  Stream* const opened = stream.get();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    stream_ = std::move(stream);  // from here stop() can cancel it
    stream_broken_ = false;
  }
  opened->rw = stub_->Forward(&opened->context);
  {
    std::lock_guard lock(mu_);
    if (stopping_) opened->context.TryCancel();  // stop() may have come before the call began
  }
  opened->reader = std::thread([this, opened] { read_answers(*opened); });
  // First, again, whatever the last stream left unanswered, in order.
  std::vector<v1::ForwardBatch> again;
  {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (auto& sent : in_flight_) {
      again.push_back(to_batch(config_.self_id, link_id_, sent.sequence, sent.items));
      sent.written = now;
    }
  }
  for (const auto& batch : again) {
    if (!write(batch)) return false;
  }
  return true;
}

void PeerLink::close_stream() {
  std::unique_ptr<Stream> stream;
  {
    std::lock_guard lock(mu_);
    stream.swap(stream_);
    stream_broken_ = false;
  }
  if (!stream) return;
  stream->context.TryCancel();
  if (stream->reader.joinable()) stream->reader.join();
  const auto status = stream->rw->Finish();
  // A stream this side cancelled ends CANCELLED; anything else came from the peer.
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED && !failing_) {
    log_.info("cluster: forwarding to {} failed: {}", config_.peer_id, status.error_message());
    failing_ = true;
  }
}

bool PeerLink::send_batch() {
  Sent sent;
  {
    std::lock_guard lock(mu_);
    if (stream_broken_ || queue_.empty() || in_flight_.size() >= config_.max_batches_in_flight) return false;
    size_t bytes = 0;
    while (!queue_.empty() && sent.items.size() < config_.max_batch) {
      Item& item = queue_.front();
      const size_t size = item.message->payload.size();
      if (bytes > 0 && bytes + size > kMaxBatchBytes) break;
      bytes += size;
      if (!item.done && queued_qos0_ > 0) --queued_qos0_;
      sent.items.push_back(std::move(item));
      queue_.pop_front();
    }
    sent.sequence = next_sequence_++;
    if (!sent.items.empty()) batching_ = sent.items.front().index;
  }
  const v1::ForwardBatch batch = to_batch(config_.self_id, link_id_, sent.sequence, sent.items);
  sent.written = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(mu_);
    in_flight_.push_back(std::move(sent));  // before the write: the answer may come at once
    batching_ = 0;
  }
  return write(batch);
}

bool PeerLink::write(const v1::ForwardBatch& batch) {
  if (stream_->rw->Write(batch)) return true;
  std::lock_guard lock(mu_);
  stream_broken_ = true;  // its batches go again on the next stream
  return false;
}

void PeerLink::read_answers(Stream& stream) {
  v1::ForwardAck ack;
  while (stream.rw->Read(&ack)) answered(ack);
  {
    std::lock_guard lock(mu_);
    if (stream_.get() == &stream) stream_broken_ = true;
  }
  cv_.notify_all();
}

void PeerLink::answered(const v1::ForwardAck& ack) {
  Sent sent;
  {
    std::lock_guard lock(mu_);
    const auto it = std::find_if(in_flight_.begin(), in_flight_.end(),
                                 [&](const Sent& s) { return s.sequence == ack.sequence(); });
    if (it == in_flight_.end()) return;  // answered already (sent twice)
    sent = std::move(*it);
    in_flight_.erase(it);
  }
  cv_.notify_all();  // room in the window
  if (failing_.exchange(false)) log_.info("cluster: forwarding to {} works again", config_.peer_id);
  latency_.observe(std::chrono::steady_clock::now() - sent.written);
  std::vector<bool> refused(sent.items.size(), false);
  for (uint32_t i : ack.refused()) {
    if (i < refused.size()) refused[i] = true;
  }
  counters_.sent.fetch_add(sent.items.size(), std::memory_order_relaxed);
  for (size_t i = 0; i < sent.items.size(); ++i) {
    if (refused[i]) counters_.refused.fetch_add(1, std::memory_order_relaxed);
    if (sent.items[i].done) sent.items[i].done(!refused[i]);
  }
  owner_.forwards_answered();
}

}  // namespace starling::cluster
