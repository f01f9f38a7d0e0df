// The starling executable: parse the configuration, then run the node.

#include <sys/resource.h>

#include <iostream>
#include <memory>
#include <string>
#include <variant>

#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "broker/config.h"
#include "broker/log_format.h"
#include "broker/server.h"
#include "cluster/cluster_node.h"

int main(int argc, char** argv) {
  namespace broker = starling::broker;

  auto parsed = broker::parse_config(argc, argv, broker::process_environment());
  if (const auto* exit = std::get_if<broker::ConfigExit>(&parsed)) {
    std::string message = exit->message;
    while (!message.empty() && message.back() == '\n') message.pop_back();
    (exit->exit_code == 0 ? std::cout : std::cerr) << message << '\n';
    return exit->exit_code;
  }
  const broker::Config& config = std::get<broker::Config>(parsed);

  // A logger owned here and passed down, not spdlog's global registry.
  spdlog::logger log{"starling", std::make_shared<spdlog::sinks::stderr_color_sink_mt>()};
  log.set_level(spdlog::level::from_str(std::string{broker::to_string(config.log_level)}));
  if (config.log_format == broker::LogFormat::json) log.set_formatter(broker::make_json_log_formatter());
  log.info("starling {} node {}", broker::version(), config.node_id);
  for (const auto& [name, value] : broker::describe(config)) log.info("  {}: {}", name, value);

  // Each client is a file descriptor: take all the hard limit allows, as
  // brokers holding many connections do.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &files) == 0) log.info("open file limit raised to {}", files.rlim_cur);
  }

  // The cluster listener first: peers may call as soon as the node is known,
  // and /readyz says "joining" until the seeds answered.
  std::unique_ptr<starling::cluster::ClusterNode> cluster;
  if (config.cluster_listen) {
    auto started = starling::cluster::ClusterNode::start(config, log);
    if (!started.node) {
      std::cerr << "starling: " << started.error << '\n';
      return 1;
    }
    cluster = std::move(started.node);
  }

  broker::Server server(config, log, cluster.get());
  if (auto error = server.start()) {
    std::cerr << "starling: " << error->message << '\n';
    return error->exit_code;
  }
  return server.run();
}
