// Every session on this node, by client id: opening (new, resumed or taken
// over), closing, and the clock-driven parts (delayed wills, session expiry).
//
// Threads: called from any worker; mu_ guards the map and is never held while
// calling into a Session's listener or the router.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "broker/routing/retained_store.h"
#include "broker/routing/router.h"
#include "broker/session/session.h"

namespace starling::storage {
class GroupCommit;
}

namespace starling::broker {

class SessionRegistry {
 public:
  SessionRegistry(Router& router, RetainedStore& retained, QueueLimits queue_limits);

  struct Opened {
    std::shared_ptr<Session> session;
    bool present = false;  // an existing session was resumed
  };
  // For a CONNECT: a connection already attached to the client id's session is
  // asked to close with 0x8E [MQTT-3.1.4-3]; a pending delayed will of the
  // session is cancelled [MQTT-3.1.3-9]; with clean start the old session ends
  // [MQTT-3.1.2-4], otherwise it is resumed [MQTT-3.1.2-5] unless its expiry
  // was 0 (it ends with the connection being replaced).
  // The new connection is attached before the registry lock is released, so
  // the old connection closing meanwhile cannot end a session being resumed.
  Opened open(const std::string& client_id, bool clean_start, uint32_t expiry_interval,
              std::weak_ptr<SessionListener> listener);

  // The connection attached to `session` went away (after detaching). `will`
  // is published now when its delay is 0, else when the delay passes or the
  // session ends, whichever comes first. A session with expiry 0 ends now.
  void closed(const std::shared_ptr<Session>& session, std::optional<WillMessage> will, Clock::time_point now);

  // Publishes due wills and ends sessions whose expiry passed. Called
  // periodically.
  void sweep(Clock::time_point now);

  // A client identifier for a client that sent none [MQTT-3.1.3-6].
  std::string assign_client_id();

  size_t size() const;

  // Publishes a message that no connection sent (a will, $SYS): to the
  // retained store when it is retained, then to subscribers.
  void publish_internal(const MessagePtr& message, Clock::time_point now);
  // The same, and a retained will is written to the node's store too (no one
  // waits for it: its client is gone).
  void publish_will(const WillMessage& will, Clock::time_point now);
  // Where retained wills are written. Set once by the server before the first
  // connection, read only after.
  void set_store(storage::GroupCommit* commits) { commits_ = commits; }

 private:
  void end_session(const std::shared_ptr<Session>& session, Clock::time_point now);
  using Map = std::unordered_map<std::string, std::shared_ptr<Session>>;
  // `session`'s entry, or end() when another session replaced it under its
  // client id.
  Map::iterator find_current_locked(const Session& session);

  Router& router_;
  RetainedStore& retained_;
  storage::GroupCommit* commits_ = nullptr;
  const QueueLimits queue_limits_;
  std::atomic<SessionId> next_id_{1};
  mutable std::mutex mu_;
  Map sessions_;  // guarded by mu_
  // The sessions left without a connection: the only ones sweep() looks at,
  // so thousands of connected clients cost it nothing. Guarded by mu_.
  std::unordered_set<std::shared_ptr<Session>> offline_;
};

}  // namespace starling::broker
