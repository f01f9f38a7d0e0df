// A node that joins or restarts pulls every retained message from a live
// peer before it reports ready, so a subscriber on it sees what one on any
// other node sees. The peer's messages are applied by version (last writer
// wins); a topic retained here that the peer no longer has, and that no
// newer write reached since this node started, is cleared.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <spdlog/logger.h>

#include <grpcpp/security/credentials.h>

#include "broker/session/session_registry.h"
#include "cluster/membership/membership.h"
#include "cluster/routing/retained_versions.h"

namespace starling::cluster {

class RetainedSync {
 public:
  RetainedSync(Membership& membership, RetainedVersions& versions, std::string secret,
               std::shared_ptr<grpc::ChannelCredentials> credentials, spdlog::logger& log);
  ~RetainedSync();
  RetainedSync(const RetainedSync&) = delete;
  RetainedSync& operator=(const RetainedSync&) = delete;

  // Pulls on a thread of its own once the node has joined, then runs
  // `then` there.
  void start(broker::SessionRegistry& sessions, std::function<void()> then = {});
  void stop();
  bool synced() const { return synced_.load(); }

 private:
  void run();
  bool pull();  // false when stopped first
  // Everything from the peer at `address`; false when it could not be had.
  bool pull_from(const std::string& node_id, const std::string& address);
  bool wait(std::chrono::milliseconds pause);  // false when stopping

  Membership& membership_;
  RetainedVersions& versions_;
  const std::string secret_;
  const std::shared_ptr<grpc::ChannelCredentials> credentials_;
  spdlog::logger& log_;
  broker::SessionRegistry* sessions_ = nullptr;
  std::function<void()> then_;
  std::atomic<bool> synced_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace starling::cluster
