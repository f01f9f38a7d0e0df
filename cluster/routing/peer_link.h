// What this node sends one live peer: its own routes (deltas, snapshots when
// the peer lacks the start of a delta, and a digest every few seconds), and
// the messages published here that match the peer's routes, batched, in
// order, each QoS 1/2 one acknowledged before its publisher is.
//
// Messages go over one long-lived stream (Routing.Forward), several batches
// in flight, each answered by sequence. When the stream breaks, the batches
// not answered go again, in order, on a new one; the peer knows them by the
// link's id and their sequence and does not deliver them twice. A stream
// whose oldest batch stays unanswered too long is broken on purpose.
//
// A thread of its own (and one reading the answers): a peer that stops
// reading holds up only its own link. QoS 0 messages beyond a bound are
// dropped (counted); QoS 1/2 ones wait (their publishers wait for the
// acknowledgement anyway) and fail when the link stops, for a peer declared
// dead.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <spdlog/logger.h>

#include "broker/routing/forwarder.h"
#include "broker/stats.h"
#include "broker/stored_message.h"
#include "cluster/routing/retained_versions.h"
#include "cluster/routing/route_table.h"
#include "proto/cluster.grpc.pb.h"

namespace starling::cluster {

class ClusterForwarder;
struct PeerCounters;

// How a message goes to one peer.
struct ForwardMeta {
  bool deliver = true;  // false: only to be retained there (no matching route)
  std::optional<RetainedVersion> retained;  // set for a retained message
  std::vector<std::string> shared_groups;   // the groups the peer delivers to
  std::vector<std::string> delivered_to;    // QoS 1/2: the other peers it goes to for delivery
};

struct PeerLinkConfig {
  std::string self_id;
  std::string peer_id;
  std::string address;
  std::string secret;
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // null: plain
  std::chrono::milliseconds digest_interval{2000};
  size_t max_queued_qos0 = 10000;
  size_t max_batch = 1024;
  size_t max_batches_in_flight = 8;
  // A batch unanswered this long breaks the stream; it goes again on a new one.
  std::chrono::milliseconds answer_timeout{5000};
};

// A message's id as it travels between nodes, and back.
void set_message_id(v1::MessageId& out, const broker::MessageId& id);
broker::MessageId message_id(const v1::MessageId& id);

// A message as it travels between nodes, and back (null when a peer sent
// something no client could have: a bad topic, QoS or properties).
v1::ForwardedMessage to_forwarded(const broker::Message& message, const broker::ClockPair& now);
// ... with how it goes to the peer.
v1::ForwardedMessage to_forwarded(const broker::Message& message, const broker::ClockPair& now,
                                  const ForwardMeta& meta);
broker::MessagePtr from_forwarded(const v1::ForwardedMessage& message, const broker::ClockPair& now);

class PeerLink {
 public:
  PeerLink(PeerLinkConfig config, RouteTable& routes, ClusterForwarder& owner, PeerCounters& counters,
           broker::LatencyHistogram& latency, spdlog::logger& log);
  ~PeerLink();
  PeerLink(const PeerLink&) = delete;
  PeerLink& operator=(const PeerLink&) = delete;

  void start();
  // Ends the thread (cancelling a call in flight); QoS 1/2 messages still
  // waiting fail, QoS 0 ones are dropped.
  void stop();
  // This node's routes changed.
  void wake();
  // False when the message was dropped (QoS 0, too many waiting).
  bool enqueue(const broker::MessagePtr& message, broker::Forwarder::Done done, ForwardMeta meta = {});
  // How many messages were handed to the link (enqueue) so far, and how many
  // of the first of them are answered or failed: all of the first
  // answered_through() (for ClusterForwarder::after_forwards_answered).
  uint64_t handed() const;
  uint64_t answered_through() const;
  // The version of this node's routes the peer acknowledged.
  std::optional<RouteVersion> acked() const;
  uint64_t repairs() const;  // snapshots the peer asked for after a digest or delta
  // Breaks a stream whose oldest batch waits past answer_timeout (called
  // every few tens of milliseconds from outside: the link's own thread may be
  // stuck writing to a peer that does not read).
  void check_stalled();
  const std::string& address() const { return config_.address; }
  const std::string& peer_id() const { return config_.peer_id; }

 private:
  struct Item {
    broker::MessagePtr message;
    broker::Forwarder::Done done;
    ForwardMeta meta;
    uint64_t index = 0;  // counts from 1 in the order handed to the link
  };
  // A batch written and not yet answered.
  struct Sent {
    uint64_t sequence;
    std::vector<Item> items;
    std::chrono::steady_clock::time_point written;
  };
  struct Stream;
  void run();
  bool send_routes(bool digest);
  // Opens a stream and writes again whatever is unanswered; false on failure.
  bool open_stream();
  void close_stream();
  // Writes the next batch from the queue, if the window allows one.
  bool send_batch();
  bool write(const v1::ForwardBatch& batch);  // false: the stream broke
  void read_answers(Stream& stream);
  void answered(const v1::ForwardAck& ack);
  // Runs a call with `context` cancellable by stop(); false when stopping.
  bool begin_call(grpc::ClientContext& context);
  void end_call();
  void wait_for(std::chrono::milliseconds pause);

  const PeerLinkConfig config_;
  RouteTable& routes_;
  ClusterForwarder& owner_;
  PeerCounters& counters_;
  broker::LatencyHistogram& latency_;
  spdlog::logger& log_;
  std::unique_ptr<v1::Routing::Stub> stub_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  uint64_t handed_ = 0;  // items ever queued
  uint64_t batching_ = 0;  // first item of a batch on its way from queue_ to in_flight_; 0: none
  size_t queued_qos0_ = 0;  // QoS 0 items in queue_
  std::deque<Sent> in_flight_;  // in sequence order
  const uint64_t link_id_;
  uint64_t next_sequence_ = 1;
  std::unique_ptr<Stream> stream_;  // set and reset by the link's thread only
  bool stream_broken_ = false;
  bool routes_dirty_ = true;  // the first contact sends everything
  bool stopping_ = false;
  std::optional<RouteVersion> acked_;
  uint64_t repairs_ = 0;
  grpc::ClientContext* in_call_ = nullptr;
  std::atomic<bool> failing_{false};  // for logging the first failure and the recovery only
  std::thread thread_;
};

}  // namespace starling::cluster
