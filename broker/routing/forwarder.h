// Where else a message goes: the narrow interface through which the broker
// core's routing sees the cluster. A single node uses LocalOnly;
// cluster/routing/cluster_forwarder.h implements it over gRPC.
#pragma once

#include <functional>
#include <string_view>

#include "broker/message.h"

namespace starling::broker {

class Forwarder {
 public:
  // Called once, on any thread: true when every node that had to have the
  // message (or the routes) acknowledged it, false when one could not.
  using Done = std::function<void(bool ok)>;

  virtual ~Forwarder() = default;
  // A session on this node subscribed to `filter` (a plain filter or
  // $share/GROUP/FILTER), or no longer does; once per subscription, under
  // the router's lock: quick, never blocking.
  virtual void subscribed(std::string_view filter) = 0;
  virtual void unsubscribed(std::string_view filter) = 0;
  // Calls `done` once every live node knows this node's routes as they are
  // now (or a bounded wait passed): a SUBACK sent after it means a message
  // published anywhere reaches the subscriber.
  virtual void when_routes_known(Done done) = 0;
  // Sends a message published on this node (not one from a peer) to every
  // other node with a matching route; returns how many. `done` (may be
  // empty) is called once they all acknowledged it; at once with zero.
  virtual size_t forward(const MessagePtr& message, Done done) = 0;
};

class LocalOnly final : public Forwarder {
 public:
  void subscribed(std::string_view) override {}
  void unsubscribed(std::string_view) override {}
  void when_routes_known(Done done) override { done(true); }
  size_t forward(const MessagePtr&, Done done) override {
    if (done) done(true);
    return 0;
  }
};

}  // namespace starling::broker
