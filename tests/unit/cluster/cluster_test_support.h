// What the cluster's unit tests share: a logger that drops everything, and a
// bounded wait for a condition another thread makes true.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>

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

}  // namespace starling::cluster::testing
