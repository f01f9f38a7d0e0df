// Routes published messages to the sessions whose subscriptions match, on this
// node, and tells the Forwarder of every subscription that comes and goes;
// publish() also hands the message to it for the rest of the cluster.
//
// Threads: publish() runs on any worker and takes mu_ shared, so publishers
// never wait on each other; subscribe/unsubscribe take it exclusively for one
// tree update. Shared-group cursors have their own small mutex.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <boost/container/small_vector.hpp>

#include "broker/routing/forwarder.h"
#include "broker/routing/topic_tree.h"
#include "broker/session/session.h"
#include "broker/stats.h"

namespace starling::broker {

class Router {
 public:
  explicit Router(Forwarder& forwarder) : forwarder_(forwarder) {}

  // Adds (or replaces) the session's subscription on `filter` (which may be
  // $share/GROUP/FILTER). True when it is new.
  bool subscribe(const std::shared_ptr<Session>& session, std::string_view filter, const SubscriptionEntry& entry);
  // True when the subscription existed.
  bool unsubscribe(SessionId session, std::string_view filter);
  // Ends the session in the router: removes every subscription it holds and
  // refuses new ones. The session's filters must be recorded in it before
  // subscribe() is called.
  void remove_session(Session& session);

  struct Published {
    size_t deliveries = 0;   // sessions the message was queued for
    bool quota_exceeded = false;  // a QoS 1/2 subscriber's queue was full: delivered to none
    std::array<size_t, kDropReasons> dropped_by{};  // deliveries dropped, by reason
    size_t dropped() const noexcept { return Stats::sum(dropped_by); }
    // Subscribers queued past their slow-down mark: the publisher should wait
    // for them (Session::wait_for_room) before sending more.
    std::vector<std::shared_ptr<Session>> congested;
    // Stored deliveries (sequence != 0) that were not queued after all (the
    // session had the message already, or it expired meanwhile): their
    // records are to be erased (erase_unqueued).
    std::vector<std::pair<std::shared_ptr<Session>, uint64_t>> unqueued;
  };
  // kAllOrNone: a client's PUBLISH, refused as a whole when a QoS 1/2
  // subscriber has no room. kBestEffort: the broker's own messages (wills,
  // $SYS), which no one can be told about, go to every subscriber with room.
  enum class Policy { kAllOrNone, kBestEffort };
  Published publish(const MessagePtr& message, Clock::time_point now, Policy policy = Policy::kAllOrNone);

  // A session a message was routed to, counted as such
  // (Session::routes_under_way) from the match until its delivery is queued
  // or given up: a session removed from the router meanwhile still gets it.
  class RoutedSession {
   public:
    explicit RoutedSession(std::shared_ptr<Session> session) : session_(std::move(session)) {
      if (session_) session_->route_begun();
    }
    RoutedSession(RoutedSession&& other) noexcept
        : session_(std::move(other.session_)), counted_(std::exchange(other.counted_, false)) {}
    RoutedSession& operator=(RoutedSession&& other) noexcept {
      if (this != &other) {
        ended();
        session_ = std::move(other.session_);
        counted_ = std::exchange(other.counted_, false);
      }
      return *this;
    }
    RoutedSession(const RoutedSession&) = delete;
    RoutedSession& operator=(const RoutedSession&) = delete;
    ~RoutedSession() { ended(); }
    // The delivery is queued (or given up).
    void ended() {
      if (session_ && std::exchange(counted_, false)) session_->route_ended();
    }
    Session* operator->() const { return session_.get(); }
    Session& operator*() const { return *session_; }
    const std::shared_ptr<Session>& shared() const { return session_; }
    explicit operator bool() const { return session_ != nullptr; }

   private:
    std::shared_ptr<Session> session_;
    bool counted_ = true;
  };

  // publish() in two steps, for a caller that stores the deliveries to
  // persistent sessions (put_queued) before any session can send them.
  struct Route {
    // One per matching session: its subscriptions merged into one delivery.
    boost::container::small_vector<std::pair<RoutedSession, Delivery>, 4> deliveries;
    // kAllOrNone only: a QoS 1/2 subscriber has no room; deliver() queues
    // nothing.
    bool quota_exceeded = false;
  };
  // `only_groups`: for a message another node forwarded, the shared groups
  // ("$share/NAME/FILTER") this node is to deliver it to; each group gets a
  // message once in the cluster, and the publishing node chose. Null: every
  // matching group (a message published here).
  Route route(const MessagePtr& message, Policy policy = Policy::kAllOrNone,
              const std::vector<std::string>* only_groups = nullptr) const;
  // Queues the route's deliveries (on this node only: the caller forwards).
  Published deliver(Route& route, Clock::time_point now, Policy policy = Policy::kAllOrNone);

  Forwarder& forwarder() const { return forwarder_; }
  size_t subscription_count() const;
  size_t shared_group_count() const;
  // Every session with a subscription that matches `topic` (a valid topic
  // name), each once, shared group members included; for the admin API, not
  // the publish path.
  std::vector<std::shared_ptr<Session>> sessions_matching(std::string_view topic) const;

 private:
  struct Target {
    SessionId session;
    SubscriptionEntry entry;
    bool shared = false;  // through a shared group: a copy of its own [MQTT 5 4.8.2]
  };
  using Targets = boost::container::small_vector<Target, 4>;
  size_t pick_member(const SharedGroup& group) const;
  bool unsubscribe_locked(SessionId session, std::string_view filter);

  Forwarder& forwarder_;
  mutable std::shared_mutex mu_;
  TopicTree tree_;                                                 // guarded by mu_
  std::unordered_map<SessionId, std::shared_ptr<Session>> sessions_;  // guarded by mu_: those with subscriptions
  std::unordered_map<SessionId, size_t> subscription_counts_;         // guarded by mu_
  mutable std::mutex cursor_mu_;
  mutable std::unordered_map<uint64_t, size_t> group_cursors_;  // guarded by cursor_mu_
};

}  // namespace starling::broker
