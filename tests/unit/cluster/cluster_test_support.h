// What the cluster's unit tests share: a logger that drops everything, a
// bounded wait for a condition another thread makes true, a session
// listener that ignores everything, numbered messages, and a member's
// membership served on loopback.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>

#include "broker/message.h"
#include "broker/session/session.h"
#include "cluster/membership/membership.h"
#include "cluster/rpc/membership_service.h"

namespace starling::cluster::testing {

inline spdlog::logger& quiet_log() {
  static spdlog::logger log{"test", std::make_shared<spdlog::sinks::null_sink_mt>()};
  return log;
}

inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  return condition();
}

class NullListener : public broker::SessionListener {
 public:
  void wake() override {}
  void kick(mqtt::ReasonCode) override {}
  void room() override {}
};

// A message on `topic` (payload "p"), numbered `serial` from one origin.
inline broker::MessagePtr numbered_message(const std::string& topic, mqtt::QoS qos, uint64_t serial) {
  return broker::make_message(topic, "p", qos, false, {}, 0, nullptr, broker::Clock::now(),
                              broker::MessageId{1, 2, serial});
}

// Fast timings, so detection takes a fraction of a second.
inline MembershipConfig fast_config(std::string node_id, std::string secret = {}) {
  using std::chrono::milliseconds;
  MembershipConfig c;
  c.node_id = std::move(node_id);
  c.secret = std::move(secret);
  c.swim.probe_interval = milliseconds{100};
  c.swim.suspicion_timeout = milliseconds{500};
  c.ping_timeout = milliseconds{40};
  c.seed_interval = milliseconds{300};
  c.join_timeout = milliseconds{1000};
  return c;
}

// One node's membership served on a free loopback port (with `extra`, a
// service of the node's, if given); not probing until start(). Shut down
// when the test ends.
class TestNode {
 public:
  // `config`'s address is set here.
  explicit TestNode(MembershipConfig config, std::vector<std::string> seeds = {}, grpc::Service* extra = nullptr)
      : service_{config.secret} {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    if (extra != nullptr) builder.RegisterService(extra);
    server_ = builder.BuildAndStart();
    config.address = address();
    membership_ = std::make_unique<Membership>(
        std::move(config), [seeds = std::move(seeds)] { return seeds; }, quiet_log());
    service_.attach(*membership_);
  }
  explicit TestNode(std::string node_id, std::string secret = {}, std::vector<std::string> seeds = {},
                    std::chrono::milliseconds ping_timeout = std::chrono::milliseconds{40})
      : TestNode(with_ping_timeout(fast_config(std::move(node_id), std::move(secret)), ping_timeout),
                 std::move(seeds)) {}
  ~TestNode() {
    membership_->stop();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds{500});
  }

  bool started() const { return server_ != nullptr && port_ != 0; }
  // What a crash looks like to the others: no word, no answers.
  void crash() {
    membership_->stop();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds{100});
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  Membership& membership() { return *membership_; }

  std::optional<MemberState> state_of(const std::string& id) const {
    for (const auto& m : membership_->members()) {
      if (m.node_id == id) return m.state;
    }
    return std::nullopt;
  }

 private:
  static MembershipConfig with_ping_timeout(MembershipConfig c, std::chrono::milliseconds timeout) {
    c.ping_timeout = timeout;
    return c;
  }
  MembershipService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Membership> membership_;
};

}  // namespace starling::cluster::testing
