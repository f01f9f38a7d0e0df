// One client connection: reads and decodes packets, hands them to the
// handlers, and writes what they and the session send back.
//
// Threads: everything runs on the connection's worker (its home), except
// wake(), kick() and room(), which any thread may call; they post to the home.
// A plain TCP connection whose deliveries all come from one other worker moves
// there, once: a publisher and a subscriber that talk to each other then share
// a worker, and a message between them takes no cross-thread wake-up.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/circular_buffer.hpp>

#include "broker/handlers/client_link.h"
#include "broker/mqtt/decoder.h"
#include "broker/net/byte_stream.h"
#include "broker/net/deadline_wheel.h"
#include "broker/stats.h"

namespace starling::broker {

class Connection final : public ClientLink,
                         public SessionListener,
                         public ReadableWaiter,
                         private DeadlineWheel::Entry,
                         public std::enable_shared_from_this<Connection> {
 public:
  // `worker` runs the stream's operations; `listener` is what it came through.
  Connection(BrokerContext& broker, std::unique_ptr<ByteStream> stream, boost::asio::io_context& worker,
             ListenerKind listener = ListenerKind::kMqtt);
  ~Connection() override;

  // Starts reading; a client that sends no CONNECT in time is dropped.
  void start();

  // SessionListener (any thread).
  void wake() override;
  void kick(mqtt::ReasonCode reason) override;
  void room() override;
  void describe(std::function<void(const ConnectionInfo&)> reply) override;

  // ClientLink (the worker).
  ClientState& state() override { return state_; }
  BrokerContext& broker() override { return broker_; }
  void send(const mqtt::Packet& packet) override;
  void reply(mqtt::Packet packet, After after) override;
  StoreDone hold_reply(mqtt::Packet packet, After after) override;
  Release hold_reply_until(mqtt::Packet packet, After after) override;
  void flush_session(bool resend_inflight) override;
  void close(std::optional<mqtt::ReasonCode> reason, bool normal, std::string_view why = {}) override;
  std::weak_ptr<SessionListener> listener() override { return weak_from_this(); }
  void set_keep_alive(uint16_t seconds) override;
  TrafficCounters& traffic() override;  // the home worker's
  void wait_for_room(Session& congested) override;
  Resume suspend() override;
  bool closed() const override { return closing_; }

 private:
  // Bytes waiting to be written: encoded packets in `bytes`, and payloads sent
  // straight from their shared buffers.
  struct Piece {
    size_t offset = 0;  // into bytes, when payload is empty
    size_t size = 0;
    std::string_view payload;  // a shared payload; keep holds it alive
    mqtt::SharedBytes keep;
  };
  struct OutBuffer {
    std::vector<uint8_t> bytes;
    std::vector<Piece> pieces;
    size_t total = 0;
    bool empty() const { return pieces.empty(); }
    void clear() {
      bytes.clear();
      pieces.clear();
      total = 0;
    }
    void note_bytes(size_t from);  // bytes[from..] were appended
  };

  void read();
  void read_chunk(size_t size);
  void maybe_read();  // unless a read is under way or reading is paused
  // Dispatches the held packets, in order, until a wait for room begins (or
  // all of them, when `all`).
  void handle_held(bool all);
  void on_read(boost::system::error_code ec, size_t n);
  void on_readable(boost::system::error_code ec) override;
  void on_deadline() override;
  void on_room();
  void end_room_wait();
  void start_write();
  void on_write(boost::system::error_code ec);
  // False when the message was too large for the client, and dropped.
  bool send_delivery(uint16_t packet_id, const Delivery& d, bool dup, Clock::time_point now,
                     TrafficCounters& counted);
  // Schedules the next deadline: CONNECT in time, or the keep alive.
  void arm_timer();
  DeadlineWheel& wheel();
  Clock::time_point keep_alive_deadline() const;
  void on_timer();
  void finish_close();
  // The session's side of a connection ending (close(), or a suspended
  // CONNECT finishing on a connection that closed meanwhile).
  void end_session(std::optional<mqtt::ReasonCode> reason, bool normal, Clock::time_point now);
  void resume(const std::function<void(ClientLink&)>& then);
  // Runs f(*this) on the home worker, and after any move under way.
  template <typename F>
  void post_home(F f);
  // A wake from worker `from`: true when the connection starts moving there.
  bool follow_waker(int from);
  bool start_move(int to);
  void hand_over(int to, ByteStream::Released socket);
  void arrive(ByteStream::Released socket);
  // The pool's count of connections on the home worker.
  void count_on_home(int delta);
  // The oldest write a reply waits for is committed (or failed).
  void on_released(uint64_t token, bool ok);
  // A held reply whose write failed: turned into the failure the client can
  // be told; false when the packet has no way to say it.
  bool refuse_reply(mqtt::Packet& packet);

  BrokerContext& broker_;
  std::unique_ptr<ByteStream> stream_;
  mqtt::StreamDecoder decoder_;
  ClientState state_;
  // What is being written and what waits for it. Made by the first send and
  // dropped once everything is written, so an idle connection holds none.
  struct Output {
    OutBuffer pending;
    OutBuffer writing;
    std::vector<boost::asio::const_buffer> write_buffers;
    std::vector<Session::Ready> ready;  // flush_session's, reused while busy
  };
  Output& out() {
    if (!out_) out_ = std::make_unique<Output>();
    return *out_;
  }
  size_t buffered() const { return out_ ? out_->pending.total + out_->writing.total : 0; }
  std::unique_ptr<Output> out_;
  size_t read_size_ = 256;  // of the next read (connection.cpp: kIdleReadChunk)
  bool write_in_flight_ = false;
  bool in_read_batch_ = false;
  bool reading_ = false;  // a read is under way
  bool read_paused_ = false;  // too much output waiting: no reads until it drains
  bool closing_ = false;  // no more reads; close once pending bytes are out
  bool waiting_readable_ = false;  // the pending read is a readable wait
  // Moving between workers (see follow_waker): from the decision until the
  // new worker has the socket. At most one move per connection.
  bool moving_ = false;
  bool moved_ = false;
  // The worker that runs this connection; changes only by a move.
  std::atomic<boost::asio::io_context*> home_;
  // A publisher's wait for congested subscribers: no reads until each has
  // room (or kRoomWait passed). Made by the first wait: most connections
  // never wait.
  struct RoomWait {
    explicit RoomWait(const boost::asio::any_io_executor& executor) : timer(executor) {}
    size_t waits = 0;  // answers outstanding
    boost::circular_buffer<mqtt::Decoded> held;  // received while waiting; nothing allocated when empty
    std::vector<const Session*> waited_on;  // only identify; never followed
    boost::asio::steady_timer timer;
  };
  size_t room_waits() const { return room_ ? room_->waits : 0; }
  // Replies held until the store has what their packet wrote, and those
  // queued behind them, in order. Made by the first such write.
  struct HeldReply {
    mqtt::Packet packet;
    After after;
    bool waiting;        // for its own write's commit, or other nodes
    uint64_t token = 0;  // names it to the callback that releases it
  };
  uint64_t next_hold_token_ = 1;
  std::unique_ptr<std::deque<HeldReply>> held_replies_;
  bool holding() const { return room_ && !room_->held.empty(); }
  bool suspended_ = false;  // see suspend()
  std::unique_ptr<RoomWait> room_;
  Clock::time_point last_read_;
  std::atomic<bool> wake_posted_{false};
  int8_t waker_ = -1;  // the other worker that woke us last, and how often in a row
  uint8_t wakes_from_waker_ = 0;
  bool connack_held_ = false;  // the CONNACK waits for the session's record
  const ListenerKind listener_;
};

}  // namespace starling::broker
