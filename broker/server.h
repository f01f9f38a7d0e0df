// One node: wires the listeners, workers, sessions, router and retained store
// together and runs until SIGTERM or SIGINT. Wiring only; the behaviour lives
// in the parts.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <spdlog/logger.h>

#include "broker/cluster_link.h"
#include "broker/config.h"

namespace starling::broker {

class Server {
 public:
  // `cluster`: the rest of the cluster, owned by the caller; null for a
  // single node.
  Server(const Config& config, spdlog::logger& log, ClusterLink* cluster = nullptr);
  ~Server();

  struct StartError {
    std::string message;  // one line, naming the directory or listener
    int exit_code;        // 2: the data directory; 1: a listener
  };
  // Opens the node's store in --data-dir, then binds every listener.
  std::optional<StartError> start();
  // Serves until a signal arrives; returns the process exit status.
  int run();

 private:
  struct Parts;
  std::unique_ptr<Parts> parts_;
};

}  // namespace starling::broker
