#include "broker/net/connection.h"

#include <algorithm>

#include <boost/asio/post.hpp>

#include "broker/handlers/handlers.h"
#include "broker/mqtt/encoder.h"
#include "broker/net/worker_pool.h"
#include "broker/ring_buffer.h"
#include "storage/group_commit.h"

namespace starling::broker {
namespace {

namespace asio = boost::asio;
using mqtt::ProtocolVersion;
using mqtt::ReasonCode;

constexpr size_t kReadChunk = 16 * 1024;
// A WebSocket connection waits with a small buffer, so that thousands of idle
// clients do not each pin a full read chunk (TCP waits with none); a read that
// fills it is followed by full-size reads.
constexpr size_t kIdleReadChunk = 256;
// Output waiting for a slow reader beyond this stops us taking more from the
// session queue (which is bounded, and whose length slows the publishers) and
// reading more from the client.
constexpr size_t kMaxBufferedOutput = 32 * 1024;
constexpr size_t kKeptBufferCapacity = 64 * 1024;
// How long a closing connection may take to flush its last bytes.
constexpr auto kCloseGrace = std::chrono::seconds(5);
// While a publisher waits for congested subscribers, its connection is still
// read: acknowledgements of what it is sent (and PINGREQ) are handled at once,
// so clients that publish to each other cannot stall waiting on each other;
// everything else is held, in order, up to this many packets. A conforming
// QoS 1/2 publisher holds no more than its window.
constexpr size_t kMaxHeldPackets = 256;
// A wait ends after this at the latest: a subscriber that stays stuck then
// fills to the hard queue limit, and the publisher is refused.
constexpr auto kRoomWait = std::chrono::seconds(1);
// Wake-ups in a row from one other worker, and none from our own, before a
// connection moves to that worker.
constexpr uint8_t kWakesBeforeMove = 32;

// Packets about the server's own deliveries, handled even while the client's
// publishes are held.
bool handled_while_held(const mqtt::Packet& p) {
  switch (mqtt::type_of(p)) {
    case mqtt::PacketType::kPuback:
    case mqtt::PacketType::kPubrec:
    case mqtt::PacketType::kPubcomp:
    case mqtt::PacketType::kPingreq: return true;
    default: return false;
  }
}

}  // namespace

void Connection::OutBuffer::note_bytes(size_t from) {
  const size_t n = bytes.size() - from;
  if (n == 0) return;
  // Consecutive encoded packets share one piece.
  if (!pieces.empty() && pieces.back().payload.empty() && pieces.back().offset + pieces.back().size == from) {
    pieces.back().size += n;
  } else {
    pieces.push_back({from, n, {}, nullptr});
  }
  total += n;
}

Connection::Connection(BrokerContext& broker, std::unique_ptr<ByteStream> stream, asio::io_context& worker,
                       ListenerKind listener)
    : broker_(broker),
      stream_(std::move(stream)),
      decoder_(broker.limits.max_packet_size),
      home_(&worker),
      listener_(listener) {
  count_on_home(1);  // and -1 in close(), which every connection's end goes through
  broker_.stats.connections_alive.fetch_add(1, std::memory_order_relaxed);
}

TrafficCounters& Connection::traffic() {
  return broker_.stats.traffic(broker_.workers ? broker_.workers->index_of(*home_.load(std::memory_order_relaxed)) : -1);
}

void Connection::count_on_home(int delta) {
  if (broker_.workers) {
    broker_.workers->count_connection(broker_.workers->index_of(*home_.load(std::memory_order_relaxed)), delta);
  }
}

Connection::~Connection() {
  // Normally close() detached already; never leave a session pointing here.
  if (state_.session) state_.session->detach(this);
  broker_.stats.connections_alive.fetch_sub(1, std::memory_order_relaxed);
}

template <typename F>
void Connection::post_home(F f) {
  asio::post(*home_.load(std::memory_order_acquire), [self = shared_from_this(), f = std::move(f)]() mutable {
    // Posted before a move: run on the new worker, once the move is done.
    // (moving_ belongs to the home worker's thread, so it is read only there.)
    if (!self->home_.load(std::memory_order_acquire)->get_executor().running_in_this_thread() || self->moving_) {
      self->post_home(std::move(f));
      return;
    }
    f(*self);
  });
}

DeadlineWheel& Connection::wheel() {
  return DeadlineWheel::of(asio::any_io_executor(home_.load(std::memory_order_relaxed)->get_executor()));
}

void Connection::start() {
  broker_.stats.connections.fetch_add(1, std::memory_order_relaxed);
  broker_.stats.connections_open[static_cast<size_t>(listener_)].fetch_add(1, std::memory_order_relaxed);
  broker_.stats.connections_accepted[static_cast<size_t>(listener_)].fetch_add(1, std::memory_order_relaxed);
  last_read_ = Clock::now();
  arm_timer();
  read();
}

void Connection::maybe_read() {
  if (reading_ || closing_ || read_paused_) return;
  if (room_ && room_->held.size() >= kMaxHeldPackets) return;
  read();
}

void Connection::read() {
  if (closing_) return;
  reading_ = true;
  if (!stream_->can_wait_readable()) {
    read_chunk(read_size_);
    return;
  }
  // TCP: take what is there at once, in a full chunk; when nothing is, wait
  // for bytes holding no buffer, so an idle connection costs none.
  boost::system::error_code ec;
  auto space = decoder_.prepare(kReadChunk);
  read_size_ = kReadChunk;
  const size_t n = stream_->read_some_now(asio::buffer(space.data(), space.size()), ec);
  if (ec != asio::error::would_block && ec != asio::error::try_again) {
    // Handled on a fresh stack, as an asynchronous read would be.
    asio::post(stream_->executor(), [self = shared_from_this(), ec, n] { self->on_read(ec, n); });
    return;
  }
  decoder_.release_if_empty();
  waiting_readable_ = true;
  stream_->async_wait_readable(shared_from_this());
}

void Connection::on_readable(boost::system::error_code ec) {
  waiting_readable_ = false;
  if (moving_) {
    // The wait was ended by the move: reading resumes on the new worker, which
    // first reads whatever arrived meanwhile.
    reading_ = false;
    return;
  }
  if (ec || closing_) {
    on_read(ec ? ec : asio::error::operation_aborted, 0);
    return;
  }
  read_chunk(kReadChunk);
}

void Connection::read_chunk(size_t size) {
  read_size_ = size;
  auto space = decoder_.prepare(size);
  stream_->async_read_some(asio::buffer(space.data(), space.size()),
                           [self = shared_from_this()](boost::system::error_code ec, size_t n) { self->on_read(ec, n); });
}

void Connection::on_read(boost::system::error_code ec, size_t n) {
  reading_ = false;
  if (closing_) return;
  if (ec) {
    handle_held(/*all=*/true);  // what arrived before the end still counts
    if (!closing_) close(std::nullopt, false);  // the network connection is gone: not a normal disconnect
    return;
  }
  traffic().bytes_received.fetch_add(n, std::memory_order_relaxed);
  decoder_.commit(n);
  last_read_ = Clock::now();
  in_read_batch_ = true;
  // Every whole packet that arrived is handled in this one pass.
  while (!closing_) {
    auto next = decoder_.next();
    if (!next) {
      const auto& err = next.error();
      if (!state_.connected) broker_.stats.count_connect(err.code);
      if (!state_.connected && err.code == ReasonCode::kUnsupportedProtocolVersion) {
        // Answered in the 3.1.1 form, which every client version reads [MQTT-3.1.2-2].
        broker_.log.debug("{}: CONNECT with an unsupported protocol version", stream_->remote_address());
        state_.version = ProtocolVersion::kV311;
        mqtt::Connack ack;
        ack.reason_code = err.code;
        send(ack);
        close(std::nullopt, false);
      } else {
        handle_held(/*all=*/true);
        if (!closing_) close(err.code, false, err.detail);
      }
      break;
    }
    if (!next->has_value()) break;
    if (suspended_ || ((room_waits() > 0 || holding()) && !handled_while_held((**next).packet))) {
      if (!room_) room_ = std::make_unique<RoomWait>(stream_->executor());
      push_grow(room_->held, std::move(**next));
      continue;
    }
    dispatch(*this, **next);
  }
  in_read_batch_ = false;
  start_write();
  if (closing_) return;
  if (n < read_size_) {
    // Drained: hold no buffer while idle, and (WebSocket) wait with a small one.
    decoder_.release_if_empty();
    read_size_ = kIdleReadChunk;
  } else {
    read_size_ = kReadChunk;  // more is coming
  }
  if (buffered() > kMaxBufferedOutput) {
    read_paused_ = true;  // resumed by on_write once the client has read enough
  }
  maybe_read();
}

void Connection::handle_held(bool all) {
  // Nothing goes before the packet that suspended the connection is done;
  // closed meanwhile, what was held is dropped (the client never heard back).
  if (!holding() || suspended_) return;
  const bool batch = in_read_batch_;
  in_read_batch_ = true;
  auto& held = room_->held;
  while (!held.empty() && !closing_ && (all || room_->waits == 0)) {
    mqtt::Decoded d = std::move(held.front());
    held.pop_front();
    dispatch(*this, d);
  }
  release_if_drained(held, 0);
  in_read_batch_ = batch;
  if (!batch) start_write();
}

void Connection::wait_for_room(Session& congested) {
  if (closing_) return;
  if (!room_) room_ = std::make_unique<RoomWait>(stream_->executor());
  auto& waited_on = room_->waited_on;
  if (std::find(waited_on.begin(), waited_on.end(), &congested) != waited_on.end()) return;
  if (!congested.wait_for_room(weak_from_this())) return;  // drained meanwhile
  waited_on.push_back(&congested);
  if (room_->waits++ > 0) return;
  room_->timer.expires_after(kRoomWait);
  room_->timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    // A wait already over (its expiry raced the cancel) has nothing to end.
    if (!ec && self->room_waits() > 0) self->end_room_wait();
  });
}

ClientLink::Resume Connection::suspend() {
  suspended_ = true;
  // Held until it resumes (the callers bound that in time): what comes then
  // (a session handed over by another node) must find the connection, even
  // one that closed meanwhile.
  return [self = shared_from_this()](std::function<void(ClientLink&)> then) {
    self->post_home([then = std::move(then)](Connection& c) { c.resume(then); });
  };
}

void Connection::resume(const std::function<void(ClientLink&)>& then) {
  suspended_ = false;
  const bool was_closing = closing_;
  then(*this);
  // A CONNECT accepted on a connection that closed while it waited: the
  // session it opened is left as a lost connection leaves it.
  if (was_closing && state_.connected) end_session(std::nullopt, false, Clock::now());
  if (closing_) return;
  handle_held(/*all=*/false);
  if (room_ && room_->waits == 0 && room_->held.empty()) room_.reset();  // so the connection may move again
  maybe_read();
}

void Connection::room() {
  post_home([](Connection& c) { c.on_room(); });
}

void Connection::on_room() {
  // One answer per wait; one left over from a wait that timed out may end the
  // next one early, which costs only an early read.
  if (room_waits() == 0) return;
  if (--room_->waits == 0) end_room_wait();
}

void Connection::end_room_wait() {
  room_->waits = 0;
  room_->waited_on.clear();
  room_->timer.cancel();
  handle_held(/*all=*/false);  // may start another wait
  maybe_read();
}

void Connection::send(const mqtt::Packet& packet) {
  OutBuffer& pending = out().pending;
  const size_t from = pending.bytes.size();
  const auto version = state_.version == ProtocolVersion::kUnknown ? ProtocolVersion::kV311 : state_.version;
  auto st = mqtt::encode(packet, version, pending.bytes);
  if (!st) {
    broker_.log.error("cannot encode {} for {}: {}", mqtt::packet_type_name(mqtt::type_of(packet)),
                      state_.client_id(), st.error().detail);
    return;
  }
  if (pending.bytes.size() - from > state_.client_max_packet_size) {
    // Too large for the client: Reason String and User Properties are left
    // out [MQTT-3.1.2-25]; if that is not enough, the packet is not sent.
    pending.bytes.resize(from);
    mqtt::Packet smaller = packet;
    std::visit(
        [](auto& p) {
          if constexpr (requires { p.properties; }) {
            p.properties.reason_string.reset();
            p.properties.user_properties.clear();
          }
        },
        smaller);
    if (!mqtt::encode(smaller, version, pending.bytes) || pending.bytes.size() - from > state_.client_max_packet_size) {
      pending.bytes.resize(from);
      return;
    }
  }
  pending.note_bytes(from);
  if (!in_read_batch_) start_write();
}

void Connection::reply(mqtt::Packet packet, After after) {
  if (held_replies_) {
    held_replies_->push_back({std::move(packet), std::move(after), false});
    return;
  }
  send(packet);
  if (after) after(*this);
}

ClientLink::StoreDone Connection::hold_reply(mqtt::Packet packet, After after) {
  return [release = hold_reply_until(std::move(packet), std::move(after)), weak = weak_from_this()](
             const storage::Status& status) {
    if (auto self = weak.lock()) self->broker_.note_store_write(status);
    release(status.ok());
  };
}

ClientLink::Release Connection::hold_reply_until(mqtt::Packet packet, After after) {
  if (!held_replies_) held_replies_ = std::make_unique<std::deque<HeldReply>>();
  // Nothing goes to the client before its CONNACK (flush_session waits).
  if (std::holds_alternative<mqtt::Connack>(packet)) connack_held_ = true;
  const uint64_t token = next_hold_token_++;
  held_replies_->push_back({std::move(packet), std::move(after), true, token});
  // Called back on another thread (the committer's, gRPC's): the answer is
  // posted home, and marks its own reply, whatever the order.
  return [weak = weak_from_this(), token](bool ok) {
    if (auto self = weak.lock()) self->post_home([token, ok](Connection& c) { c.on_released(token, ok); });
  };
}

bool Connection::refuse_reply(mqtt::Packet& packet) {
  // Not stored, so not acknowledged as received [MQTT-4.3.2-2].
  const bool v5 = state_.version == ProtocolVersion::kV5;
  if (auto* rec = std::get_if<mqtt::Pubrec>(&packet)) {
    if (state_.session) state_.session->end_inbound_qos2(rec->packet_id);
    rec->reason_code = ReasonCode::kUnspecifiedError;
    return v5;
  }
  if (auto* ack = std::get_if<mqtt::Puback>(&packet)) {
    ack->reason_code = ReasonCode::kUnspecifiedError;
    return v5;
  }
  if (auto* sub = std::get_if<mqtt::Suback>(&packet)) {
    for (auto& code : sub->reason_codes) code = ReasonCode::kUnspecifiedError;  // 0x80 in 3.1.1 too
    return true;
  }
  if (auto* unsub = std::get_if<mqtt::Unsuback>(&packet)) {
    for (auto& code : unsub->reason_codes) code = ReasonCode::kUnspecifiedError;
    return v5;
  }
  if (std::holds_alternative<mqtt::Connack>(packet)) {
    // Refused as "server unavailable" (3.1.1: return code 3), then closed.
    mqtt::Connack refused;
    refused.reason_code = ReasonCode::kServerUnavailable;
    connack_held_ = false;
    send(refused);
    return false;
  }
  return false;  // PUBREL, PUBCOMP: the state they confirm was not stored
}

void Connection::on_released(uint64_t token, bool ok) {
  if (!held_replies_ || closing_) return;
  auto& held = *held_replies_;
  for (HeldReply& r : held) {
    if (r.token != token || !r.waiting) continue;
    r.waiting = false;
    if (!ok) {
      if (!refuse_reply(r.packet)) return close(std::nullopt, false);
      r.after = nullptr;
    }
    break;
  }
  while (!held.empty() && !held.front().waiting) {
    HeldReply r = std::move(held.front());
    held.pop_front();
    if (std::holds_alternative<mqtt::Connack>(r.packet)) connack_held_ = false;
    send(r.packet);
    if (r.after) r.after(*this);
  }
  if (held.empty()) held_replies_.reset();
}

bool Connection::send_delivery(uint16_t packet_id, const Delivery& d, bool dup, Clock::time_point now,
                               TrafficCounters& counted) {
  const Message& m = *d.message;
  mqtt::Publish p;
  p.topic = m.topic;
  p.payload = m.payload;
  p.qos = d.qos;
  p.retain = d.retain;
  p.dup = dup;
  p.packet_id = packet_id;
  const bool v5 = state_.version == ProtocolVersion::kV5;
  bool new_alias = false;
  if (v5) {
    if (m.properties) p.properties = *m.properties;
    if (auto left = m.remaining_expiry(now)) p.properties.message_expiry_interval = *left;  // [MQTT-3.3.2-6]
    p.properties.subscription_identifiers = d.subscription_ids;
    if (state_.client_topic_alias_maximum > 0) {
      auto& aliases = state_.topic_aliases().outbound;
      auto it = aliases.find(m.topic);
      if (it != aliases.end()) {
        p.topic = {};
        p.properties.topic_alias = it->second;
      } else if (aliases.size() < state_.client_topic_alias_maximum) {
        const auto alias = static_cast<uint16_t>(aliases.size() + 1);
        aliases.emplace(m.topic, alias);
        p.properties.topic_alias = alias;
        new_alias = true;
      }
    }
  }
  OutBuffer& pending = out().pending;
  const size_t from = pending.bytes.size();
  auto st = mqtt::encode_publish_header(p, state_.version, pending.bytes);
  const size_t size = pending.bytes.size() - from + m.payload.size();
  if (!st || size > state_.client_max_packet_size) {
    // Too large for this client: dropped as if delivered [MQTT-3.1.2-25].
    pending.bytes.resize(from);
    if (new_alias) state_.aliases->outbound.erase(m.topic);
    if (packet_id != 0) {
      const uint64_t sequence = state_.session->discard(packet_id).sequence;
      forget_stored(*this, {&sequence, 1});
    }
    broker_.stats.count_drop(DropReason::kTooLarge);
    return false;
  }
  pending.note_bytes(from);
  if (!m.payload.empty()) {
    pending.pieces.push_back({0, m.payload.size(), m.payload, m.backing});
    pending.total += m.payload.size();
  }
  const size_t qos = Stats::qos_index(d.qos);
  counted.messages_sent[qos].fetch_add(1, std::memory_order_relaxed);
  counted.payload_bytes_sent[qos].fetch_add(m.payload.size(), std::memory_order_relaxed);
  if (!d.from_retained) counted.delivery_latency.observe(now - m.received_at);
  return true;
}

void Connection::flush_session(bool resend_inflight) {
  if (closing_ || !state_.session || connack_held_) return;
  Session& session = *state_.session;
  if (resend_inflight) {
    // Released QoS 2 deliveries get their PUBREL again [MQTT-4.4.0-1]; the
    // unacknowledged PUBLISHes come out of take_ready below, with DUP.
    for (uint16_t id : session.released_ids()) {
      mqtt::Pubrel rel;
      rel.packet_id = id;
      send(rel);
    }
  }
  if (buffered() <= kMaxBufferedOutput) {
    const size_t window = std::min<size_t>(state_.client_receive_maximum, broker_.limits.max_inflight);
    auto& ready = out().ready;
    TrafficCounters& counted = traffic();
    // A pass whose every message was too large for the client writes
    // nothing, and so no write's end asks for more: take again then.
    for (bool wrote = false; !wrote;) {
      size_t expired = 0;
      std::vector<uint64_t> forget;
      const size_t room = kMaxBufferedOutput - buffered();
      ready.clear();
      const auto now = Clock::now();
      session.take_ready(this, window, now, ready, expired, forget, room);
      broker_.stats.count_drop(DropReason::kExpired, expired);
      forget_stored(*this, forget);  // the expired ones that were stored
      if (ready.empty()) break;
      SessionReplication* replication = replication_of(*this);
      for (const auto& r : ready) {
        wrote = send_delivery(r.packet_id, r.delivery, r.dup, now, counted) || wrote;
        if (replication && r.delivery.qos == mqtt::QoS::k2) replication->sent(session, r.delivery.message->id, r.packet_id);
      }
      ready.clear();
    }
  }
  if (!in_read_batch_) start_write();
}

void Connection::wake() {
  if (wake_posted_.exchange(true)) return;  // one wake-up per batch
  const int from = broker_.workers ? broker_.workers->current() : -1;
  post_home([from](Connection& c) {
    c.wake_posted_.store(false);
    if (!c.follow_waker(from)) c.flush_session(false);
  });
}

void Connection::describe(std::function<void(const ConnectionInfo&)> reply) {
  post_home([reply = std::move(reply)](Connection& c) {
    ConnectionInfo info;
    info.peer = c.stream_->remote_address();
    info.listener = to_string(c.listener_);
    switch (c.state_.version) {
      case ProtocolVersion::kV31: info.protocol = "3.1"; break;
      case ProtocolVersion::kV311: info.protocol = "3.1.1"; break;
      case ProtocolVersion::kV5: info.protocol = "5.0"; break;
      default: break;
    }
    info.keep_alive = c.state_.keep_alive;
    reply(info);
  });
}

void Connection::kick(ReasonCode reason) {
  post_home([reason](Connection& c) { c.close(reason, false); });
}

bool Connection::follow_waker(int from) {
  if (from < 0 || moved_) return false;
  WorkerPool& pool = *broker_.workers;
  const int home = pool.index_of(*home_.load(std::memory_order_relaxed));
  if (from == home) {
    wakes_from_waker_ = 0;
    return false;
  }
  if (from != waker_) {
    waker_ = static_cast<int8_t>(from);
    wakes_from_waker_ = 0;
  }
  if (++wakes_from_waker_ < kWakesBeforeMove) return false;
  wakes_from_waker_ = 0;
  // Only a connection at rest moves: nothing being written, no wait for room
  // (whose timer belongs to this worker), only a readable wait pending.
  if (!stream_->can_move() || !state_.connected || closing_ || write_in_flight_ || room_ || !waiting_readable_) {
    return false;
  }
  // Never onto a busier worker: pairs gather, but fan-out does not pile up.
  if (pool.connections(from) > pool.connections(home)) return false;
  return start_move(from);
}

bool Connection::start_move(int to) {
  auto socket = stream_->release_worker();  // the readable wait ends with operation_aborted
  if (socket.fd < 0) return false;  // not open: nothing to move, and the wait stands
  moving_ = true;
  DeadlineWheel::cancel(*this);  // arrive() schedules it on the new worker's wheel
  asio::post(*home_.load(std::memory_order_relaxed),
             [self = shared_from_this(), to, socket] { self->hand_over(to, socket); });
  return true;
}

void Connection::hand_over(int to, ByteStream::Released socket) {
  if (waiting_readable_) {  // the aborted wait has not run yet: it must, here
    asio::post(*home_.load(std::memory_order_relaxed),
               [self = shared_from_this(), to, socket] { self->hand_over(to, socket); });
    return;
  }
  WorkerPool& pool = *broker_.workers;
  count_on_home(-1);
  pool.count_connection(to, 1);
  moved_ = true;
  // From here the new worker owns this connection; whatever reaches it before
  // the arrival sees moving_ and goes round again.
  asio::io_context& next = pool.at(to);
  home_.store(&next, std::memory_order_release);
  asio::post(next, [self = shared_from_this(), socket] { self->arrive(socket); });
}

void Connection::arrive(ByteStream::Released socket) {
  moving_ = false;
  broker_.stats.connections_moved.fetch_add(1, std::memory_order_relaxed);
  if (auto ec = stream_->attach_worker(*home_.load(std::memory_order_relaxed), socket)) {
    broker_.log.warn("{}: could not move to another worker: {}", state_.client_id(), ec.message());
    reading_ = true;
    on_read(ec, 0);  // as if the connection broke
    return;
  }
  broker_.log.debug("{}: moved to worker {}", state_.client_id(), broker_.workers->index_of(*home_.load()));
  arm_timer();
  flush_session(false);
  read();
}

void Connection::start_write() {
  if (write_in_flight_) return;
  if (!out_ || out_->pending.empty()) {
    if (closing_) finish_close();
    return;
  }
  Output& o = *out_;
  std::swap(o.pending, o.writing);
  o.pending.clear();
  o.write_buffers.clear();
  for (const Piece& piece : o.writing.pieces) {
    if (piece.payload.empty()) {
      o.write_buffers.emplace_back(o.writing.bytes.data() + piece.offset, piece.size);
    } else {
      o.write_buffers.emplace_back(piece.payload.data(), piece.payload.size());
    }
  }
  write_in_flight_ = true;
  stream_->async_write(o.write_buffers, [self = shared_from_this()](boost::system::error_code ec, size_t) {
    self->on_write(ec);
  });
}

void Connection::on_write(boost::system::error_code ec) {
  write_in_flight_ = false;
  OutBuffer& writing = out_->writing;
  traffic().bytes_sent.fetch_add(writing.total, std::memory_order_relaxed);
  writing.clear();
  // A burst must not leave a large buffer behind while the connection stays
  // busy; small ones are kept for reuse.
  if (writing.bytes.capacity() > kKeptBufferCapacity) writing = OutBuffer{};
  if (ec) {
    close(std::nullopt, false);
    finish_close();
    return;
  }
  if (closing_) {
    start_write();
    return;
  }
  if (state_.session && state_.session->queued_count() > 0) flush_session(false);
  start_write();
  // Nothing more to write (start_write found nothing pending): an idle
  // connection keeps no output buffers.
  if (!write_in_flight_) out_.reset();
  if (read_paused_ && buffered() <= kMaxBufferedOutput) {
    read_paused_ = false;
    maybe_read();
  }
}

void Connection::close(std::optional<ReasonCode> reason, bool normal, std::string_view why) {
  if (closing_) return;
  closing_ = true;
  // A client that broke the rules hears why and the log says so: once, here,
  // as the connection ends (never once per packet). The server's own reasons
  // (shutting down, taken over, administrative action, keep alive) are not
  // misbehaviour.
  if (reason && static_cast<uint8_t>(*reason) >= 0x80 && *reason != ReasonCode::kServerShuttingDown &&
      *reason != ReasonCode::kSessionTakenOver && *reason != ReasonCode::kAdministrativeAction &&
      *reason != ReasonCode::kKeepAliveTimeout) {
    broker_.log.info("{} {}: closed: {}{}{}", stream_->remote_address(),
                     state_.connected ? state_.client_id() : std::string_view{"(before CONNECT)"},
                     mqtt::reason_name(*reason), why.empty() ? "" : ": ", why);
  }
  const auto now = Clock::now();
  if (reason && state_.connected && state_.version == ProtocolVersion::kV5) {
    mqtt::Disconnect d;
    d.reason_code = *reason;
    // Always a Reason String: besides saying why in words, it makes the
    // packet longer than a bare reason code, which some clients (paho-mqtt
    // 1.6, eclipse-paho/paho.mqtt.python#860) need to see the code at all.
    d.properties.reason_string = why.empty() ? mqtt::reason_name(*reason) : why;
    send(d);
  }
  end_session(reason, normal, now);
  broker_.stats.connections.fetch_sub(1, std::memory_order_relaxed);
  broker_.stats.connections_open[static_cast<size_t>(listener_)].fetch_sub(1, std::memory_order_relaxed);
  count_on_home(-1);
  // Bounded wait for the last bytes (a DISCONNECT) to go out.
  wheel().schedule(*this, now + kCloseGrace);
  if (!write_in_flight_) start_write();
}

void Connection::end_session(std::optional<ReasonCode> reason, bool normal, Clock::time_point now) {
  if (!state_.connected || !state_.session) return;
  broker_.stats.clients_connected.fetch_sub(1, std::memory_order_relaxed);
  broker_.stats.count_disconnect(reason ? reason : normal ? std::optional{ReasonCode::kSuccess} : std::nullopt);
  std::optional<WillMessage> will;
  if (!normal && state_.will) {
    will = WillMessage{state_.will_message(now), now + std::chrono::seconds(state_.will_delay), now};
  }
  if (state_.session->detach(this)) {
    broker_.sessions.closed(state_.session, std::move(will), now);
  } else if (will && (state_.will_delay == 0 || state_.session->ended())) {
    // Taken over: an undelayed will still goes out, and so does a delayed one
    // when a clean start ended the session; a resumed session cancels it
    // [MQTT-3.1.3-9].
    broker_.sessions.publish_will(*will, now);
  }
}

void Connection::finish_close() {
  DeadlineWheel::cancel(*this);
  if (room_) room_->timer.cancel();
  stream_->close();
}

void Connection::set_keep_alive(uint16_t seconds) {
  state_.keep_alive = seconds;
  arm_timer();
}

Clock::time_point Connection::keep_alive_deadline() const {
  // 1.5 times the keep alive, from the last packet received [MQTT-3.1.2-22].
  return last_read_ + std::chrono::milliseconds(state_.keep_alive * 1500);
}

void Connection::arm_timer() {
  if (closing_) return;
  if (!state_.connected) {
    wheel().schedule(*this, Clock::now() + broker_.limits.connect_timeout);
  } else if (state_.keep_alive == 0) {
    DeadlineWheel::cancel(*this);
  } else {
    wheel().schedule(*this, keep_alive_deadline());
  }
}

void Connection::on_deadline() {
  // Scheduled entries are alive (destruction unlinks them); hold this one
  // while it runs.
  auto self = weak_from_this().lock();
  if (!self) return;
  if (closing_) {
    finish_close();  // the last bytes did not go out in time
  } else {
    on_timer();
  }
}

void Connection::on_timer() {
  if (closing_) return;
  if (!state_.connected) {
    broker_.log.debug("{}: no CONNECT in time", stream_->remote_address());
    close(std::nullopt, false);
    return;
  }
  if (Clock::now() >= keep_alive_deadline()) {
    broker_.log.debug("{} {}: keep alive timed out", stream_->remote_address(), state_.client_id());
    close(ReasonCode::kKeepAliveTimeout, false, "no packet within 1.5 times the keep alive");
    return;
  }
  // Once per keep-alive period: what a burst left in the session's buffers
  // is freed, so a quiet client costs little, while a busy one reuses them.
  if (state_.session) state_.session->trim();
  arm_timer();
}

}  // namespace starling::broker
