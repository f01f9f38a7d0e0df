// starling-bench: an MQTT load generator usable against any broker.
//
// Scenarios (after the Open MQTT Benchmark Suite):
//   fanin      P publishers -> one topic -> S subscribers (each gets everything)
//   p2p        N publisher/subscriber pairs, one topic per pair (--publishers N)
//   fanout     1 publisher -> one topic -> S subscribers
//   sharedsub  P publishers -> a $share group of S subscribers (each message once)
//   pingpong   N pairs, round trips
//   conns      N idle connections (optionally one subscription each) held open
//
// Every payload starts with publisher id (u32), sequence number (u64) and send
// time (u64, steady_clock ns), little-endian, so the receiving side computes
// latency, losses, duplicates and reordering per (publisher, receiver) pair.
// Single-threaded: one io_context drives every connection. With --broker-pid the
// tool also samples the broker's CPU time and resident memory from /proc.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio.hpp>

#include "bench/histogram.h"
#include "broker/mqtt/decoder.h"
#include "broker/mqtt/encoder.h"
#include "broker/mqtt/packet.h"

namespace starling::bench {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
namespace mq = starling::mqtt;

constexpr size_t kHeaderBytes = 20;
constexpr size_t kMaxConnecting = 256;  // connection attempts in progress at once
constexpr uint64_t kDrainQuietNs = 1000000000;  // drain: a second with no delivery ends the wait

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 1883;
  uint16_t sub_port = 0;  // 0: --port (a cluster bench puts subscribers on another node)
  std::string scenario = "fanin";
  uint32_t publishers = 1;
  uint32_t subscribers = 1;
  int qos = 0;
  int mqtt = 3;
  uint32_t payload = 64;
  double rate = 0;  // per publisher; 0 = open loop
  uint32_t window = 64;
  double duration = 10;
  double warmup = 1;
  double drain = 2;
  double connect_timeout = 30;
  uint32_t connections = 1000;   // conns
  uint32_t source_addresses = 0;  // conns: bind to 127.0.0.1..K; 0 = automatic
  bool subscribe_each = false;    // conns: one subscription per connection
  bool persistent = false;        // subscribers keep their session (the broker stores what it queues for them)
  int broker_pid = 0;             // sample this process's CPU and RSS; 0 = none
};

// CPU time of this process (user + system), seconds.
double self_cpu_s() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// CPU time (utime + stime) of process pid from /proc/PID/stat, seconds.
std::optional<double> proc_cpu_s(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return std::nullopt;
  const auto paren = line.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(paren + 1));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // After ")": state is field 3; utime and stime are fields 14 and 15.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  if (!rest) return std::nullopt;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return static_cast<double>(utime + stime) / static_cast<double>(ticks > 0 ? ticks : 100);
}

// A "Key:   N kB" line of /proc/PID/status (VmRSS, VmHWM), in KB.
std::optional<uint64_t> proc_status_kb(int pid, const char* key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line)) {
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') {
      return std::stoull(line.substr(n + 1));
    }
  }
  return std::nullopt;
}

// The measured window: this process's and the broker's CPU time at its start and end.
struct CpuSample {
  uint64_t ns = 0;
  double self_s = 0;
  std::optional<double> broker_s;
};

// What one receiver saw of one publisher.
struct PairState {
  std::vector<uint64_t> seen;  // bitset by sequence number
  uint64_t next = 0;           // highest sequence seen + 1
  uint64_t unique_measured = 0;
};

// A subscriber, or a whole $share group: who must see each message once.
struct Receiver {
  std::unordered_map<uint32_t, PairState> pairs;  // by publisher
};

class Client;

struct Bench {
  Options opt;
  mq::ProtocolVersion version = mq::ProtocolVersion::kV311;
  asio::io_context io;
  tcp::resolver::results_type endpoints;
  tcp::resolver::results_type sub_endpoints;  // subscribers' (--sub-port)
  std::string prefix;

  std::vector<std::unique_ptr<Client>> clients;  // subscribers first, then publishers
  std::vector<Client*> pubs, subs, idles;
  bool pingpong = false;
  std::vector<std::string> pub_topic;
  std::vector<std::string> pong_topic;  // pingpong: publisher i listens here
  std::vector<std::string> sub_filter;
  std::vector<uint32_t> sub_receiver;
  std::vector<Receiver> receivers;
  std::vector<uint32_t> fan;  // receivers that must get each message of publisher p

  // phases
  size_t next_connect = 0, connecting = 0, connected = 0, subscribed = 0;
  size_t open = 0, open_at_end = 0;  // connections up now / when the run ended
  bool running = false, stopped = false, shutting_down = false;
  uint64_t connect_start_ns = 0, connect_end_ns = 0;
  uint64_t start_ns = 0, warmup_end_ns = 0, stop_ns = 0, end_ns = 0;

  // counters
  uint64_t connect_errors = 0, errors = 0;
  uint64_t received_all = 0, received_measured = 0, duplicated = 0, out_of_order = 0;
  uint64_t received_in_window = 0;  // arrived during the measured window, whenever sent
  uint64_t last_sent = 0, last_received = 0;
  uint64_t drain_seen = 0, drain_moved_ns = 0;  // deliveries at the last drain check, and when they last grew
  Histogram latency;
  Histogram ack_latency;  // QoS 1/2: PUBLISH sent to its PUBACK/PUBCOMP, for those sent in the measured window

  asio::steady_timer phase_timer{io};
  asio::steady_timer progress_timer{io};
  asio::steady_timer ping_timer{io};
  asio::steady_timer window_timer{io};
  asio::steady_timer rss_timer{io};

  // resources: the measured window, and the broker's memory (--broker-pid)
  std::optional<CpuSample> window_begin, window_end;
  std::optional<uint64_t> rss_start, rss_peak, rss_end, rss_hwm;
  void begin_window();
  void end_window();
  void sample_rss();
  void watch_rss();

  uint64_t sent_all() const;
  uint64_t sent_measured() const;
  uint64_t expected_all() const;
  uint64_t expected_measured() const;

  void connect_more();
  void on_connected(Client& c);
  void on_connect_failed();
  void on_subscribed();
  void start_publishing();
  void progress();
  void check_drain();
  void shutdown();
  void deliver(uint32_t receiver, mq::ByteView payload);
  void error(const std::string& what) {
    if (shutting_down) return;
    note(what);
    ++errors;
  }
  // The first few problems go to stderr; the counters tell the rest.
  void note(const std::string& what) {
    if (notes++ < 10) std::cerr << "starling-bench: " << what << "\n";
  }
  uint64_t notes = 0;
};

class Client {
 public:
  enum class Role { kPublisher, kSubscriber, kIdle };

  Client(Bench& b, Role role, uint32_t index)
      : b_(b), role_(role), index_(index), socket_(b.io), timer_(b.io),
        decoder_(mq::kMaxPacketSize, b.version) {
    client_id_ = "sb-" + std::to_string(::getpid()) + (role == Role::kPublisher ? "-p" : role == Role::kSubscriber ? "-s" : "-c") +
                 std::to_string(index);
    if (role == Role::kPublisher) {
      payload_.assign(b.opt.payload, 'x');
      window_ = b.opt.qos > 0 ? b.opt.window : 0;
    }
    if (b.opt.qos > 0) out_ids_.assign(65536, false);
    if (b.opt.qos > 0 && role == Role::kPublisher) sent_at_.assign(65536, 0);
    if (b.opt.qos == 2) rel_ids_.assign(65536, false);
  }

  bool is_connected() const { return connected_; }
  uint64_t sent_all = 0, sent_measured = 0;
  uint32_t inflight = 0;

  void connect() {
    if (role_ == Role::kIdle && b_.opt.source_addresses > 0) {
      // Spread over 127.0.0.1..K so that many connections do not run out of
      // ephemeral ports of one source address.
      boost::system::error_code ec;
      const tcp::endpoint target = *b_.endpoints.begin();
      socket_.open(target.protocol(), ec);
#ifdef IP_BIND_ADDRESS_NO_PORT
      // Pick the port at connect time, by the whole 4-tuple: a port still in
      // TIME_WAIT towards another broker can be used again at once.
      if (!ec) {
        const int one = 1;
        ::setsockopt(socket_.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      }
#endif
      if (!ec) {
        const auto local = asio::ip::address_v4(0x7f000001u + index_ % b_.opt.source_addresses);
        socket_.bind(tcp::endpoint(local, 0), ec);
      }
      if (ec) {
        b_.note("bind " + client_id_ + ": " + ec.message());
        b_.on_connect_failed();
        return;
      }
      socket_.async_connect(target, [this](boost::system::error_code ec2) { on_tcp_connected(ec2); });
      return;
    }
    const auto& endpoints = role_ == Role::kSubscriber ? b_.sub_endpoints : b_.endpoints;
    asio::async_connect(socket_, endpoints, [this](boost::system::error_code ec, const tcp::endpoint&) {
      on_tcp_connected(ec);
    });
  }

  void on_tcp_connected(boost::system::error_code ec) {
    if (ec) {
      b_.note("connect " + client_id_ + ": " + ec.message());
      b_.on_connect_failed();
      return;
    }
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    mq::Connect c;
    c.version = b_.version;
    c.client_id = client_id_;
    c.clean_start = true;
    c.keep_alive = 60;
    if (b_.opt.persistent && role_ == Role::kSubscriber) {
      // A session that outlives the connection: 3.1.1 clean session 0, or
      // MQTT 5 a fresh session with an expiry.
      if (b_.version == mq::ProtocolVersion::kV5) {
        c.properties.session_expiry_interval = 3600;
      } else {
        c.clean_start = false;
      }
    }
    if (b_.version == mq::ProtocolVersion::kV5 && role_ != Role::kPublisher) {
      c.properties.receive_maximum = 65535;
    }
    send(c);
    read();
  }

  void subscribe(const std::string& filter) {
    filter_ = filter;
    mq::Subscribe s;
    s.packet_id = 1;
    mq::Subscription sub;
    sub.filter = filter_;
    sub.options.qos = static_cast<mq::QoS>(b_.opt.qos);
    s.subscriptions.push_back(sub);
    send(s);
  }

  void ping() {
    if (connected_ && !closed_) send(mq::Pingreq{});
  }

  // Publisher: begin sending (open loop or paced).
  void start() {
    if (b_.opt.rate > 0) {
      const double period_s = std::max(0.001, 1.0 / b_.opt.rate);
      period_ = std::chrono::nanoseconds(static_cast<int64_t>(period_s * 1e9));
      timer_.expires_at(Clock::now());
      tick();
    } else {
      pump();
    }
  }

  void disconnect() {
    if (closed_) return;
    if (connected_) send(mq::Disconnect{});
    closing_ = true;
    if (!writing_) close();
  }

  void close() {
    if (closed_) return;
    closed_ = true;
    if (connected_) --b_.open;
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  template <class P>
  void send(const P& packet) {
    if (closed_) return;
    auto st = mq::encode(mq::Packet{packet}, b_.version, pending_);
    if (!st) {
      b_.error(std::string("encode failed: ") + std::string(st.error().detail));
      return;
    }
    flush();
  }

  void flush() {
    if (writing_ || pending_.empty() || closed_) return;
    writing_ = true;
    out_.swap(pending_);
    asio::async_write(socket_, asio::buffer(out_), [this](boost::system::error_code ec, size_t) {
      writing_ = false;
      out_.clear();
      if (ec) {
        fail("write", ec);
        return;
      }
      if (closing_ && pending_.empty()) {
        close();
        return;
      }
      flush();
      if (role_ == Role::kPublisher && b_.opt.qos == 0 && b_.opt.rate <= 0) pump();
    });
  }

  size_t backlog() const { return pending_.size() + out_.size(); }

  void fail(const char* what, boost::system::error_code ec) {
    if (closed_) return;
    if (!b_.shutting_down && ec != asio::error::operation_aborted) {
      b_.error(client_id_ + " " + what + ": " + ec.message());
    }
    close();
  }

  void read() {
    auto space = decoder_.prepare(64 * 1024);
    socket_.async_read_some(asio::buffer(space.data(), space.size()),
                            [this](boost::system::error_code ec, size_t n) {
      if (ec) {
        if (!connected_) {
          b_.note(client_id_ + " closed before CONNACK: " + ec.message());
          closed_ = true;
          b_.on_connect_failed();
          return;
        }
        fail("read", ec);
        return;
      }
      decoder_.commit(n);
      while (!closed_) {
        auto next = decoder_.next();
        if (!next) {
          b_.error(client_id_ + ": bad packet from broker: " + std::string(next.error().detail));
          close();
          return;
        }
        if (!*next) break;
        handle((**next).packet);
      }
      if (!closed_) read();
    });
  }

  void handle(const mq::Packet& p) {
    switch (mq::type_of(p)) {
      case mq::PacketType::kConnack: {
        const auto& ack = std::get<mq::Connack>(p);
        if (ack.reason_code != mq::ReasonCode::kSuccess) {
          b_.note(client_id_ + " refused, reason code " + std::to_string(static_cast<int>(ack.reason_code)));
          close();
          b_.on_connect_failed();
          return;
        }
        if (ack.properties.receive_maximum && window_ > *ack.properties.receive_maximum) {
          window_ = *ack.properties.receive_maximum;
        }
        connected_ = true;
        ++b_.open;
        b_.on_connected(*this);
        return;
      }
      case mq::PacketType::kSuback: {
        const auto& ack = std::get<mq::Suback>(p);
        for (auto rc : ack.reason_codes) {
          if (static_cast<uint8_t>(rc) >= 0x80) {
            b_.error(client_id_ + ": subscription to " + filter_ + " refused");
            ++b_.connect_errors;
          }
        }
        b_.on_subscribed();
        return;
      }
      case mq::PacketType::kPublish: on_publish(std::get<mq::Publish>(p)); return;
      case mq::PacketType::kPuback: {
        const auto& ack = std::get<mq::Puback>(p);
        complete(ack.packet_id);
        return;
      }
      case mq::PacketType::kPubrec: {
        const auto& rec = std::get<mq::Pubrec>(p);
        if (static_cast<uint8_t>(rec.reason_code) >= 0x80) {
          b_.error(client_id_ + ": PUBREC with an error reason code");
          complete(rec.packet_id);
          return;
        }
        mq::Pubrel rel;
        rel.packet_id = rec.packet_id;
        send(rel);
        return;
      }
      case mq::PacketType::kPubcomp: complete(std::get<mq::Pubcomp>(p).packet_id); return;
      case mq::PacketType::kPubrel: {
        const auto id = std::get<mq::Pubrel>(p).packet_id;
        if (!rel_ids_.empty()) rel_ids_[id] = false;
        mq::Pubcomp comp;
        comp.packet_id = id;
        send(comp);
        return;
      }
      case mq::PacketType::kPingresp: return;
      case mq::PacketType::kDisconnect:
        b_.error(client_id_ + ": broker sent DISCONNECT");
        close();
        return;
      default: b_.error(client_id_ + ": unexpected packet from broker"); return;
    }
  }

  void on_publish(const mq::Publish& pub) {
    const auto payload = mq::ByteView(reinterpret_cast<const uint8_t*>(pub.payload.data()), pub.payload.size());
    switch (pub.qos) {
      case mq::QoS::k0: arrived(payload); break;
      case mq::QoS::k1: {
        arrived(payload);
        mq::Puback ack;
        ack.packet_id = pub.packet_id;
        send(ack);
        break;
      }
      case mq::QoS::k2: {
        // Delivered once on first receipt; a resent PUBLISH before PUBREL is not new.
        if (rel_ids_.empty()) rel_ids_.assign(65536, false);
        if (!rel_ids_[pub.packet_id]) {
          rel_ids_[pub.packet_id] = true;
          arrived(payload);
        }
        mq::Pubrec rec;
        rec.packet_id = pub.packet_id;
        send(rec);
        break;
      }
    }
  }

  uint16_t take_id() {
    do {
      ++next_id_;
    } while (next_id_ == 0 || out_ids_[next_id_]);
    out_ids_[next_id_] = true;
    return next_id_;
  }

  // A benchmark message reached this client.
  void arrived(mq::ByteView payload) {
    if (!b_.pingpong) {
      b_.deliver(b_.sub_receiver[index_], payload);
      return;
    }
    if (role_ == Role::kPublisher) {  // the pong of one of our pings
      b_.deliver(index_, payload);
      awaiting_pong_ = false;
      if (b_.opt.rate <= 0) pump();
      return;
    }
    // The echoing side: the same payload back on the pong topic.
    mq::Publish pub;
    pub.topic = b_.pong_topic[index_];
    pub.payload = std::string_view(reinterpret_cast<const char*>(payload.data()), payload.size());
    pub.qos = static_cast<mq::QoS>(b_.opt.qos);
    if (pub.qos != mq::QoS::k0) pub.packet_id = take_id();
    send(pub);
  }

  void complete(uint16_t id) {
    if (out_ids_.empty() || !out_ids_[id]) {
      b_.error(client_id_ + ": acknowledgement for an unknown packet id");
      return;
    }
    out_ids_[id] = false;
    if (role_ != Role::kPublisher) return;  // an echoed pong
    const uint64_t sent = sent_at_[id];
    if (sent >= b_.warmup_end_ns && sent < b_.stop_ns) {
      const uint64_t t = now_ns();
      b_.ack_latency.record(t > sent ? t - sent : 0);
    }
    --inflight;
    if (b_.opt.rate <= 0) pump();
  }

  bool can_send() const {
    if (closed_ || !b_.running) return false;
    // pingpong, open loop: one ping at a time, the next when its pong is back
    if (b_.pingpong && b_.opt.rate <= 0 && awaiting_pong_) return false;
    if (b_.opt.qos > 0) return inflight < window_;
    const size_t packet = payload_.size() + b_.pub_topic[index_].size() + 8;
    return backlog() < static_cast<size_t>(b_.opt.window) * packet;
  }

  void send_one() {
    const uint64_t t = now_ns();
    if (t >= b_.stop_ns) {
      b_.running = false;  // publishing time is over for everyone
      return;
    }
    const uint64_t seq = sent_all;
    std::memcpy(payload_.data(), &index_, 4);
    std::memcpy(payload_.data() + 4, &seq, 8);
    std::memcpy(payload_.data() + 12, &t, 8);
    mq::Publish pub;
    pub.topic = b_.pub_topic[index_];
    pub.payload = std::string_view(payload_.data(), payload_.size());
    pub.qos = static_cast<mq::QoS>(b_.opt.qos);
    if (pub.qos != mq::QoS::k0) {
      pub.packet_id = take_id();
      sent_at_[pub.packet_id] = t;
      ++inflight;
    }
    ++sent_all;
    if (t >= b_.warmup_end_ns) ++sent_measured;
    awaiting_pong_ = true;
    send(pub);
  }

  void pump() {
    if (role_ != Role::kPublisher) return;
    while (can_send()) send_one();
  }

  void tick() {
    if (closed_ || !b_.running) return;
    const double elapsed = static_cast<double>(now_ns() - b_.start_ns) / 1e9;
    const auto due = static_cast<uint64_t>(std::floor(b_.opt.rate * elapsed)) + 1;
    while (sent_all < due && can_send()) send_one();
    timer_.expires_at(timer_.expiry() + period_);
    timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) tick();
    });
  }

  Bench& b_;
  Role role_;
  uint32_t index_;
  std::string client_id_;
  std::string filter_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  mq::StreamDecoder decoder_;
  std::vector<uint8_t> pending_, out_;
  bool writing_ = false, connected_ = false, closing_ = false, closed_ = false;
  std::vector<char> payload_;
  std::vector<bool> out_ids_;  // packet ids of our unacknowledged QoS 1/2 PUBLISHes
  std::vector<uint64_t> sent_at_;  // publishers: when each packet id was sent (ns)
  std::vector<bool> rel_ids_;  // QoS 2 packet ids received and awaiting PUBREL
  bool awaiting_pong_ = false;
  uint16_t next_id_ = 0;
  uint32_t window_ = 0;
  Clock::duration period_{};
};

uint64_t Bench::sent_all() const {
  uint64_t n = 0;
  for (auto* p : pubs) n += p->sent_all;
  return n;
}

uint64_t Bench::sent_measured() const {
  uint64_t n = 0;
  for (auto* p : pubs) n += p->sent_measured;
  return n;
}

uint64_t Bench::expected_all() const {
  uint64_t n = 0;
  for (size_t i = 0; i < pubs.size(); ++i) n += pubs[i]->sent_all * fan[i];
  return n;
}

uint64_t Bench::expected_measured() const {
  uint64_t n = 0;
  for (size_t i = 0; i < pubs.size(); ++i) n += pubs[i]->sent_measured * fan[i];
  return n;
}

void Bench::connect_more() {
  while (connecting < kMaxConnecting && next_connect < clients.size()) {
    ++connecting;
    clients[next_connect++]->connect();
  }
}

void Bench::on_connect_failed() {
  if (shutting_down) return;
  ++connect_errors;
  --connecting;
  if (connected + connect_errors == clients.size()) {
    // Nothing more will come of the connect phase: stop with what we have.
    connect_end_ns = now_ns();
    shutdown();
    return;
  }
  connect_more();
}

void Bench::on_connected(Client&) {
  if (shutting_down) return;
  --connecting;
  ++connected;
  if (connected + connect_errors < clients.size()) {
    connect_more();
    return;
  }
  connect_end_ns = now_ns();
  if (connect_errors > 0) {
    shutdown();
    return;
  }
  for (size_t i = 0; i < subs.size(); ++i) subs[i]->subscribe(sub_filter[i]);
  if (pingpong) {
    for (size_t i = 0; i < pubs.size(); ++i) pubs[i]->subscribe(pong_topic[i]);
  }
  if (opt.subscribe_each) {
    for (size_t i = 0; i < idles.size(); ++i) idles[i]->subscribe(prefix + "/idle/" + std::to_string(i));
  }
  if (subs.empty() && !pingpong && !(opt.subscribe_each && !idles.empty())) start_publishing();
}

void Bench::on_subscribed() {
  if (++subscribed < subs.size() + (pingpong ? pubs.size() : 0) + (opt.subscribe_each ? idles.size() : 0)) return;
  if (connect_errors > 0) {
    shutdown();
    return;
  }
  start_publishing();
}

void Bench::start_publishing() {
  phase_timer.cancel();
  start_ns = now_ns();
  warmup_end_ns = start_ns + static_cast<uint64_t>(opt.warmup * 1e9);
  stop_ns = warmup_end_ns + static_cast<uint64_t>(opt.duration * 1e9);
  running = true;
  if (opt.warmup > 0) {
    window_timer.expires_at(Clock::time_point(std::chrono::nanoseconds(warmup_end_ns)));
    window_timer.async_wait([this](boost::system::error_code ec) {
      if (!ec) begin_window();
    });
  } else {
    begin_window();
  }
  for (auto* p : pubs) p->start();
  progress_timer.expires_after(std::chrono::seconds(1));
  progress_timer.async_wait([this](boost::system::error_code ec) {
    if (!ec) progress();
  });
  phase_timer.expires_at(Clock::time_point(std::chrono::nanoseconds(stop_ns)));
  phase_timer.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    running = false;
    stopped = true;
    end_window();  // conns: every connection is still held here
    check_drain();
  });
  ping_timer.expires_after(std::chrono::seconds(20));
  struct Pinger {
    Bench* b;
    void operator()(boost::system::error_code ec) const {
      if (ec || b->shutting_down) return;
      for (auto& c : b->clients) c->ping();
      b->ping_timer.expires_after(std::chrono::seconds(20));
      b->ping_timer.async_wait(*this);
    }
  };
  ping_timer.async_wait(Pinger{this});
}

void Bench::progress() {
  if (shutting_down) return;
  const uint64_t s = sent_all(), r = received_all;
  char line[200];
  std::snprintf(line, sizeof line,
                "[%6.1fs] %s sent %llu/s received %llu/s (total sent %llu received %llu) connections %zu\n",
                static_cast<double>(now_ns() - start_ns) / 1e9, stopped ? "draining" : "running",
                static_cast<unsigned long long>(s - last_sent), static_cast<unsigned long long>(r - last_received),
                static_cast<unsigned long long>(s), static_cast<unsigned long long>(r), open);
  std::cerr << line;
  last_sent = s;
  last_received = r;
  progress_timer.expires_at(progress_timer.expiry() + std::chrono::seconds(1));
  progress_timer.async_wait([this](boost::system::error_code ec) {
    if (!ec) progress();
  });
}

void Bench::check_drain() {
  if (shutting_down) return;
  bool done = received_all >= expected_all();
  for (auto* p : pubs) done = done && (p->inflight == 0 || !p->is_connected());
  // What has not arrived after a second with no delivery at all is not coming
  // (dropped): no need to wait out the rest of --drain.
  const uint64_t now = now_ns();
  if (drain_moved_ns == 0 || received_all != drain_seen) {
    drain_seen = received_all;
    drain_moved_ns = now;
  }
  const bool quiet = now - drain_moved_ns >= kDrainQuietNs;
  if (done || quiet || now >= stop_ns + static_cast<uint64_t>(opt.drain * 1e9)) {
    shutdown();
    return;
  }
  phase_timer.expires_after(std::chrono::milliseconds(10));
  phase_timer.async_wait([this](boost::system::error_code ec) {
    if (!ec) check_drain();
  });
}

void Bench::shutdown() {
  if (shutting_down) return;
  end_ns = now_ns();
  open_at_end = open;
  if (opt.broker_pid > 0) {  // the last sample of the run, before anyone disconnects
    sample_rss();
    rss_hwm = proc_status_kb(opt.broker_pid, "VmHWM");
  }
  shutting_down = true;
  running = false;
  progress_timer.cancel();
  ping_timer.cancel();
  window_timer.cancel();
  rss_timer.cancel();
  for (auto& c : clients) c->disconnect();
  phase_timer.expires_after(std::chrono::milliseconds(300));
  phase_timer.async_wait([this](boost::system::error_code) {
    for (auto& c : clients) c->close();
    io.stop();
  });
}

void Bench::begin_window() {
  if (window_begin) return;
  window_begin = CpuSample{now_ns(), self_cpu_s(), opt.broker_pid > 0 ? proc_cpu_s(opt.broker_pid) : std::nullopt};
}

void Bench::end_window() {
  if (!window_begin) begin_window();  // warm-up longer than the run cannot happen, but be safe
  if (window_end) return;
  window_end = CpuSample{now_ns(), self_cpu_s(), opt.broker_pid > 0 ? proc_cpu_s(opt.broker_pid) : std::nullopt};
  if (opt.broker_pid > 0) {
    rss_end = proc_status_kb(opt.broker_pid, "VmRSS");
    if (rss_end && (!rss_peak || *rss_end > *rss_peak)) rss_peak = rss_end;
  }
}

void Bench::sample_rss() {
  const auto kb = proc_status_kb(opt.broker_pid, "VmRSS");
  if (kb && (!rss_peak || *kb > *rss_peak)) rss_peak = kb;
}

// Every second from before the first connection until the run ends.
void Bench::watch_rss() {
  if (opt.broker_pid <= 0 || shutting_down) return;
  sample_rss();
  rss_timer.expires_after(std::chrono::seconds(1));
  rss_timer.async_wait([this](boost::system::error_code ec) {
    if (!ec) watch_rss();
  });
}

void Bench::deliver(uint32_t receiver, mq::ByteView payload) {
  const uint64_t t = now_ns();
  ++received_all;
  if (payload.size() < kHeaderBytes) {
    error("received a payload too short to carry the benchmark header");
    return;
  }
  uint32_t pub = 0;
  uint64_t seq = 0, sent = 0;
  std::memcpy(&pub, payload.data(), 4);
  std::memcpy(&seq, payload.data() + 4, 8);
  std::memcpy(&sent, payload.data() + 12, 8);
  if (pub >= pubs.size() || seq >= pubs[pub]->sent_all) {
    error("received a message this run did not send");
    return;
  }
  auto& st = receivers[receiver].pairs[pub];
  const size_t word = seq / 64;
  if (st.seen.size() <= word) st.seen.resize(std::max(word + 1, st.seen.size() * 2), 0);
  const uint64_t bit = 1ull << (seq % 64);
  const bool dup = (st.seen[word] & bit) != 0;
  const bool ooo = !dup && seq + 1 < st.next;
  st.seen[word] |= bit;
  st.next = std::max(st.next, seq + 1);
  // What the broker delivered per second while the load ran, even when (open
  // loop, overload) those messages had waited in its queues since the warm-up.
  if (!dup && t >= warmup_end_ns && t < stop_ns) ++received_in_window;
  if (sent < warmup_end_ns) return;  // warm-up: delivered, not measured
  if (dup) {
    ++duplicated;
    return;
  }
  ++received_measured;
  ++st.unique_measured;
  if (ooo) ++out_of_order;
  latency.record(t > sent ? t - sent : 0);
}

int parse(int argc, char** argv, Options& o) {
  CLI::App app{"starling-bench: an MQTT load generator", "starling-bench"};
  app.add_option("--host", o.host, "broker host")->capture_default_str();
  app.add_option("--port", o.port, "broker MQTT port")->capture_default_str();
  app.add_option("--sub-port", o.sub_port,
                 "subscribers connect to this port instead (another node of a cluster); 0 = --port")
      ->capture_default_str();
  app.add_option("--scenario", o.scenario, "fanin | p2p | fanout | sharedsub | pingpong | conns")
      ->check(CLI::IsMember({"fanin", "p2p", "fanout", "sharedsub", "pingpong", "conns"}))
      ->capture_default_str();
  auto* pubs_opt = app.add_option("--publishers", o.publishers, "publishers (p2p: pairs)")
                       ->check(CLI::Range(1u, 100000u))->capture_default_str();
  auto* subs_opt = app.add_option("--subscribers", o.subscribers, "subscribers")
                       ->check(CLI::Range(1u, 100000u))->capture_default_str();
  app.add_option("--qos", o.qos, "QoS 0, 1 or 2")->check(CLI::Range(0, 2))->capture_default_str();
  app.add_option("--mqtt", o.mqtt, "protocol: 3 (3.1.1) or 5")->check(CLI::IsMember({3, 5}))->capture_default_str();
  app.add_option("--payload", o.payload, "payload bytes (>= 20)")
      ->check(CLI::Range(static_cast<uint32_t>(kHeaderBytes), 16u * 1024 * 1024))
      ->capture_default_str();
  app.add_option("--rate", o.rate, "messages/s per publisher; 0 = open loop")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--window", o.window,
                 "open loop: in-flight messages per publisher (QoS 1/2), or socket backlog in messages (QoS 0)")
      ->check(CLI::Range(1u, 65535u))->capture_default_str();
  app.add_option("--duration", o.duration, "measured seconds")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--warmup", o.warmup, "seconds sent before measuring")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--drain", o.drain,
                 "at most this many seconds to wait for late messages (ends once all arrived, or after 1 s with "
                 "none)")->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--connect-timeout", o.connect_timeout, "seconds for connecting and subscribing")
      ->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--connections", o.connections, "conns: idle connections held for --duration")
      ->check(CLI::Range(1u, 1000000u))->capture_default_str();
  app.add_option("--source-addresses", o.source_addresses,
                 "conns: bind to 127.0.0.1..N (0 = one per 20,000 connections on a 127.x host, else none)")
      ->check(CLI::Range(0u, 254u))->capture_default_str();
  app.add_flag("--persistent", o.persistent,
               "subscribers keep their session (3.1.1 clean session 0; MQTT 5 session expiry 3600 s): the broker "
               "stores what it queues for them. Use a fresh broker: a 3.1.1 session resumes with what it held");
  auto* each_opt = app.add_flag("--subscribe-each", o.subscribe_each,
                                "conns: each connection subscribes to a topic of its own before the hold");
  app.add_option("--broker-pid", o.broker_pid,
                 "the broker's process id: report its CPU time and resident memory (from /proc)")
      ->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (each_opt->count() > 0 && o.scenario != "conns") {
    std::cerr << "starling-bench: --subscribe-each is for the conns scenario\n";
    return 2;
  }
  if (o.broker_pid > 0 && !proc_cpu_s(o.broker_pid)) {
    std::cerr << "starling-bench: --broker-pid: cannot read /proc/" << o.broker_pid << "/stat\n";
    return 2;
  }
  if (o.scenario == "p2p" || o.scenario == "pingpong") {
    if (subs_opt->count() > 0 && o.subscribers != o.publishers) {
      std::cerr << "starling-bench: " << o.scenario << " needs --subscribers equal to --publishers\n";
      return 2;
    }
    o.subscribers = o.publishers;
  }
  if (o.scenario == "conns") {
    o.publishers = 0;
    o.subscribers = 0;
    o.warmup = 0;
    if (o.source_addresses == 0 && o.host.rfind("127.", 0) == 0) {
      o.source_addresses = (o.connections + 19999) / 20000;
    }
  }
  if (o.scenario == "fanout") {
    if (pubs_opt->count() > 0 && o.publishers != 1) {
      std::cerr << "starling-bench: fanout has exactly 1 publisher\n";
      return 2;
    }
    o.publishers = 1;
  }
  return -1;
}

void setup_topics(Bench& b) {
  const auto& o = b.opt;
  b.prefix = "bench/" + std::to_string(::getpid());
  b.pub_topic.resize(o.publishers);
  b.sub_filter.resize(o.subscribers);
  b.sub_receiver.resize(o.subscribers);
  b.fan.assign(o.publishers, 0);
  if (o.scenario == "fanin" || o.scenario == "fanout") {
    const std::string topic = b.prefix + "/" + o.scenario;
    for (auto& t : b.pub_topic) t = topic;
    for (uint32_t s = 0; s < o.subscribers; ++s) {
      b.sub_filter[s] = topic;
      b.sub_receiver[s] = s;
    }
    b.receivers.resize(o.subscribers);
    b.fan.assign(o.publishers, o.subscribers);
  } else if (o.scenario == "p2p") {
    for (uint32_t i = 0; i < o.publishers; ++i) {
      b.pub_topic[i] = b.prefix + "/p2p/" + std::to_string(i);
      b.sub_filter[i] = b.pub_topic[i];
      b.sub_receiver[i] = i;
    }
    b.receivers.resize(o.subscribers);
    b.fan.assign(o.publishers, 1);
  } else if (o.scenario == "conns") {
    // Only connections: nothing is published.
  } else if (o.scenario == "pingpong") {
    // Pair i: publisher i pings on ping/i, subscriber i echoes on pong/i, and the
    // publisher (receiver i) measures the round trip.
    b.pingpong = true;
    b.pong_topic.resize(o.publishers);
    for (uint32_t i = 0; i < o.publishers; ++i) {
      b.pub_topic[i] = b.prefix + "/ping/" + std::to_string(i);
      b.pong_topic[i] = b.prefix + "/pong/" + std::to_string(i);
      b.sub_filter[i] = b.pub_topic[i];
      b.sub_receiver[i] = i;
    }
    b.receivers.resize(o.publishers);
    b.fan.assign(o.publishers, 1);
  } else {  // sharedsub: the group is one receiver
    for (uint32_t i = 0; i < o.publishers; ++i) b.pub_topic[i] = b.prefix + "/shared/" + std::to_string(i);
    for (uint32_t s = 0; s < o.subscribers; ++s) {
      b.sub_filter[s] = "$share/g" + std::to_string(::getpid()) + "/" + b.prefix + "/shared/+";
      b.sub_receiver[s] = 0;
    }
    b.receivers.resize(1);
    b.fan.assign(o.publishers, 1);
  }
}

std::string us(uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(ns) / 1000.0);
  return buf;
}

void report(const Bench& b) {
  const auto& o = b.opt;
  const uint64_t sent = b.sent_measured();
  const uint64_t expected = b.expected_measured();
  uint64_t unique = 0;
  for (const auto& r : b.receivers)
    for (const auto& [p, st] : r.pairs) unique += st.unique_measured;
  const uint64_t lost = expected > unique ? expected - unique : 0;
  const double rate = static_cast<double>(b.received_measured) / o.duration;
  const double connect_s =
      b.connect_end_ns > b.connect_start_ns ? static_cast<double>(b.connect_end_ns - b.connect_start_ns) / 1e9 : 0;
  const double connect_rate = connect_s > 0 ? static_cast<double>(b.connected) / connect_s : 0;
  const auto& h = b.latency;
  const char* mqtt = o.mqtt == 5 ? "5.0" : "3.1.1";

  std::printf("%-16s %s (MQTT %s, QoS %d)\n", "scenario", o.scenario.c_str(), mqtt, o.qos);
  char pace[64];
  if (o.rate > 0) {
    std::snprintf(pace, sizeof pace, "%g msgs/s per publisher", o.rate);
  } else {
    std::snprintf(pace, sizeof pace, "open loop, window %u", o.window);
  }
  if (o.scenario == "conns") {
    std::printf("%-16s %u idle connections%s\n", "clients", o.connections,
                o.subscribe_each ? ", one subscription each" : "");
  } else {
    std::printf("%-16s %u publishers, %u subscribers, payload %u B, %s\n", "clients", o.publishers,
                o.subscribers, o.payload, pace);
  }
  std::printf("%-16s %.1f s measured after %.1f s warm-up\n", "duration", o.duration, o.warmup);
  std::printf("%-16s %llu\n", "sent", static_cast<unsigned long long>(sent));
  std::printf("%-16s %llu\n", "expected", static_cast<unsigned long long>(expected));
  std::printf("%-16s %llu (%.0f msgs/s)\n", "received", static_cast<unsigned long long>(b.received_measured), rate);
  std::printf("%-16s %llu (%.0f msgs/s, whenever sent)\n", "in window", static_cast<unsigned long long>(b.received_in_window),
              static_cast<double>(b.received_in_window) / o.duration);
  std::printf("%-16s lost %llu, duplicated %llu, out of order %llu\n", "delivery",
              static_cast<unsigned long long>(lost), static_cast<unsigned long long>(b.duplicated),
              static_cast<unsigned long long>(b.out_of_order));
  std::printf("%-16s p50 %s  p99 %s  p99.9 %s  max %s\n", "latency (us)", us(h.percentile(0.5)).c_str(),
              us(h.percentile(0.99)).c_str(), us(h.percentile(0.999)).c_str(), us(h.max()).c_str());
  const auto& ack = b.ack_latency;
  if (o.qos > 0) {
    std::printf("%-16s p50 %s  p99 %s  p99.9 %s  max %s\n", "ack latency (us)", us(ack.percentile(0.5)).c_str(),
                us(ack.percentile(0.99)).c_str(), us(ack.percentile(0.999)).c_str(), us(ack.max()).c_str());
  }
  std::printf("%-16s %zu connected, %llu errors, %.0f connects/s, %zu still open at the end\n", "connections",
              b.connected, static_cast<unsigned long long>(b.connect_errors), connect_rate, b.open_at_end);
  std::printf("%-16s %llu\n", "errors", static_cast<unsigned long long>(b.errors));

  // CPU over the measured window, as seconds and as % of one core.
  std::optional<double> bench_cpu, bench_pct, broker_cpu, broker_pct;
  if (b.window_begin && b.window_end) {
    const double wall = static_cast<double>(b.window_end->ns - b.window_begin->ns) / 1e9;
    bench_cpu = b.window_end->self_s - b.window_begin->self_s;
    if (wall > 0) bench_pct = *bench_cpu / wall * 100;
    if (b.window_begin->broker_s && b.window_end->broker_s) {
      broker_cpu = *b.window_end->broker_s - *b.window_begin->broker_s;
      if (wall > 0) broker_pct = *broker_cpu / wall * 100;
    }
  }
  const auto fmt = [](std::optional<double> v, const char* f) {
    if (!v) return std::string("null");
    char buf[32];
    std::snprintf(buf, sizeof buf, f, *v);
    return std::string(buf);
  };
  const auto kb = [](std::optional<uint64_t> v) { return v ? std::to_string(*v) : std::string("null"); };
  if (bench_cpu) {
    std::printf("%-16s %.2f s, %.1f%% of one core\n", "bench cpu", *bench_cpu, bench_pct.value_or(0));
  } else {
    std::printf("%-16s n/a (no measured window)\n", "bench cpu");
  }
  if (o.broker_pid > 0) {
    if (broker_cpu) {
      std::printf("%-16s %.2f s, %.1f%% of one core (pid %d)\n", "broker cpu", *broker_cpu,
                  broker_pct.value_or(0), o.broker_pid);
    } else {
      std::printf("%-16s n/a (pid %d)\n", "broker cpu", o.broker_pid);
    }
    std::printf("%-16s start %s KB, peak %s KB, end %s KB (VmHWM %s KB)\n", "broker rss", kb(b.rss_start).c_str(),
                kb(b.rss_peak).c_str(), kb(b.rss_end).c_str(), kb(b.rss_hwm).c_str());
  }

  std::printf(
      "{\"scenario\":\"%s\",\"qos\":%d,\"mqtt\":\"%s\",\"publishers\":%u,\"subscribers\":%u,\"payload\":%u,"
      "\"rate\":%g,\"window\":%u,\"duration\":%g,\"warmup\":%g,\"sent\":%llu,\"received\":%llu,"
      "\"expected\":%llu,\"msgs_per_s\":%.1f,\"lost\":%llu,\"duplicated\":%llu,\"out_of_order\":%llu,"
      "\"latency_us\":{\"p50\":%s,\"p99\":%s,\"p999\":%s,\"max\":%s},"
      "\"ack_latency_us\":{\"p50\":%s,\"p99\":%s,\"p999\":%s,\"max\":%s},\"persistent\":%s,\"connections\":%zu,"
      "\"open_at_end\":%zu,\"connect_rate\":%.1f,\"connect_errors\":%llu,\"errors\":%llu,"
      "\"deliveries_per_s\":%.1f,\"sent_per_s\":%.1f,\"received_in_window\":%llu,"
      "\"received_in_window_per_s\":%.1f,\"subscribe_each\":%s,"
      "\"bench_cpu_s\":%s,\"bench_cpu_pct\":%s,\"broker_pid\":%s,\"broker_cpu_s\":%s,\"broker_cpu_pct\":%s,"
      "\"broker_rss_kb_start\":%s,\"broker_rss_kb_peak\":%s,\"broker_rss_kb_end\":%s,"
      "\"broker_rss_kb_hwm\":%s}\n",
      o.scenario.c_str(), o.qos, mqtt, o.publishers, o.subscribers, o.payload, o.rate, o.window, o.duration,
      o.warmup, static_cast<unsigned long long>(sent), static_cast<unsigned long long>(b.received_measured),
      static_cast<unsigned long long>(expected), rate, static_cast<unsigned long long>(lost),
      static_cast<unsigned long long>(b.duplicated), static_cast<unsigned long long>(b.out_of_order),
      us(h.percentile(0.5)).c_str(), us(h.percentile(0.99)).c_str(), us(h.percentile(0.999)).c_str(),
      us(h.max()).c_str(), us(ack.percentile(0.5)).c_str(), us(ack.percentile(0.99)).c_str(),
      us(ack.percentile(0.999)).c_str(), us(ack.max()).c_str(), o.persistent ? "true" : "false", b.connected,
      b.open_at_end, connect_rate, static_cast<unsigned long long>(b.connect_errors),
      static_cast<unsigned long long>(b.errors), rate, static_cast<double>(sent) / o.duration,
      static_cast<unsigned long long>(b.received_in_window), static_cast<double>(b.received_in_window) / o.duration,
      o.subscribe_each ? "true" : "false", fmt(bench_cpu, "%.3f").c_str(), fmt(bench_pct, "%.1f").c_str(),
      o.broker_pid > 0 ? std::to_string(o.broker_pid).c_str() : "null", fmt(broker_cpu, "%.3f").c_str(),
      fmt(broker_pct, "%.1f").c_str(), kb(b.rss_start).c_str(), kb(b.rss_peak).c_str(), kb(b.rss_end).c_str(),
      kb(b.rss_hwm).c_str());
  std::fflush(stdout);
}

int run(int argc, char** argv) {
  Bench b;
  if (int rc = parse(argc, argv, b.opt); rc >= 0) return rc;
  b.version = b.opt.mqtt == 5 ? mq::ProtocolVersion::kV5 : mq::ProtocolVersion::kV311;
  if (rlimit lim{}; ::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;  // one descriptor per connection
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  try {
    tcp::resolver resolver(b.io);
    b.endpoints = resolver.resolve(b.opt.host, std::to_string(b.opt.port));
    b.sub_endpoints = b.opt.sub_port == 0 ? b.endpoints : resolver.resolve(b.opt.host, std::to_string(b.opt.sub_port));
  } catch (const std::exception& e) {
    std::cerr << "starling-bench: cannot resolve " << b.opt.host << ": " << e.what() << "\n";
    return 1;
  }
  setup_topics(b);
  for (uint32_t s = 0; s < b.opt.subscribers; ++s) {
    b.clients.push_back(std::make_unique<Client>(b, Client::Role::kSubscriber, s));
    b.subs.push_back(b.clients.back().get());
  }
  if (b.opt.scenario == "conns") {
    for (uint32_t i = 0; i < b.opt.connections; ++i) {
      b.clients.push_back(std::make_unique<Client>(b, Client::Role::kIdle, i));
      b.idles.push_back(b.clients.back().get());
    }
  }
  for (uint32_t p = 0; p < b.opt.publishers; ++p) {
    b.clients.push_back(std::make_unique<Client>(b, Client::Role::kPublisher, p));
    b.pubs.push_back(b.clients.back().get());
  }
  if (b.opt.broker_pid > 0) {
    b.rss_start = proc_status_kb(b.opt.broker_pid, "VmRSS");  // before the first connection
    b.watch_rss();
  }
  b.connect_start_ns = now_ns();
  b.connect_more();
  b.phase_timer.expires_after(std::chrono::nanoseconds(static_cast<int64_t>(b.opt.connect_timeout * 1e9)));
  b.phase_timer.async_wait([&b](boost::system::error_code ec) {
    if (ec || b.running || b.stopped) return;
    std::cerr << "starling-bench: connecting and subscribing took over " << b.opt.connect_timeout << " s\n";
    b.connect_errors += b.clients.size() - b.connected;
    if (b.connect_end_ns == 0) b.connect_end_ns = now_ns();
    b.shutdown();
  });
  b.io.run();
  if (b.end_ns == 0) b.end_ns = now_ns();
  report(b);
  // Failed: a connection that could not be made, or one lost before the end.
  return b.connect_errors > 0 || b.open_at_end < b.connected ? 1 : 0;
}

}  // namespace
}  // namespace starling::bench

int main(int argc, char** argv) { return starling::bench::run(argc, argv); }
