// Where else a message goes: the narrow interface through which the broker
// core's routing sees the cluster. A single node uses LocalOnly;
// cluster/routing/cluster_forwarder.h implements it over gRPC.
#pragma once

#include <functional>
#include <mutex>
#include <string_view>

#include "broker/message.h"
#include "broker/routing/retained_store.h"

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
  // A retained message published on this node (an empty payload clears the
  // topic): runs `apply`, which puts it in the retained store and submits
  // its write to disk, under the lock that orders retained changes, and
  // returns its version for forward(). So of two writes to a topic, the
  // store, the disk and (in a cluster) every node keep the same one.
  virtual uint64_t retain(const MessagePtr& message, const std::function<void()>& apply) = 0;
  // Sends a message published on this node (not one from a peer) to every
  // other node with a matching route, and a retained one (with the version
  // retain() gave it) to every node; returns to how many nodes it goes for
  // delivery. `done` (may be empty) is called once they all acknowledged it;
  // at once with none.
  virtual size_t forward(const MessagePtr& message, Done done, uint64_t retained_version = 0) = 0;
};

class LocalOnly final : public Forwarder {
 public:
  void subscribed(std::string_view) override {}
  void unsubscribed(std::string_view) override {}
  void when_routes_known(Done done) override { done(true); }
  uint64_t retain(const MessagePtr&, const std::function<void()>& apply) override {
    std::lock_guard lock(retain_mu_);
    apply();
    return 0;
  }
  size_t forward(const MessagePtr&, Done done, uint64_t) override {
    if (done) done(true);
    return 0;
  }

 private:
  std::mutex retain_mu_;
};

}  // namespace starling::broker
