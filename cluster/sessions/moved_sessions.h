// Sessions this node released to another node a moment ago (takeover), and
// the messages that still come here for them.
//
// A peer that routed a message by what it knew before the session moved
// sends it here. Once the session is released here, that message matches
// nothing, and it would be acknowledged and lost. The peer waits for its
// forwards to be answered before it acknowledges the new node's routes, but
// only for a bounded time (RoutingService::UpdateRoutes): a forward slower
// than that still arrives after the release. For a while after a release,
// such a message goes after the session to the node it moved to, and the
// publisher's acknowledgement waits for that node (which drops one it has
// already: by message id).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "broker/session/session_registry.h"

namespace starling::cluster {

class MovedSessions {
 public:
  static constexpr std::chrono::seconds kKeepFor{10};

  // `client_id`'s session, subscribed to `subscriptions`, went to `node`.
  void add(const std::string& client_id, const std::string& node,
           std::map<std::string, broker::SubscriptionRecord> subscriptions);

  // The client's session is being handed over again (it came back here
  // since): until its release, what comes for it goes with it.
  void forget(const std::string& client_id);
  // Whether any session moved away lately: the check on every forwarded
  // message, without a lock.
  bool any() const { return count_.load(std::memory_order_relaxed) != 0; }

  struct Relay {
    std::string node;
    std::string client_id;
    broker::Delivery delivery;
  };
  // What `message` (QoS 1/2, forwarded here by `from`, which sent it to
  // `delivered_to` too) should have reached on the nodes sessions moved to:
  // one delivery per moved session it matches whose node got nothing (not
  // among those, and not `from`, which delivers to its own sessions), unless
  // that client has a session here again.
  std::vector<Relay> matching(const broker::MessagePtr& message, const std::string& from,
                              const std::vector<std::string>& delivered_to, broker::SessionRegistry& sessions);

 private:
  struct Moved {
    std::string client_id;
    std::string node;
    std::map<std::string, broker::SubscriptionRecord> subscriptions;
    broker::Clock::time_point until;
  };
  std::mutex mu_;
  std::vector<Moved> moved_;  // few, and short-lived
  std::atomic<size_t> count_{0};  // moved_.size(), written under mu_
};

}  // namespace starling::cluster
