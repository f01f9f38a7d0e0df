#pragma once

// The command line contract of DESIGN.md ("Command line"): every setting is a
// flag, an environment variable STARLING_<FLAG> and a key of the --config YAML
// file; a flag wins over the environment, which wins over the file, which wins
// over the default.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "broker/net/host_port.h"
#include "storage/kv_store.h"

namespace starling::broker {

using FsyncMode = storage::Fsync;  // the store's own modes
enum class LogLevel { trace, debug, info, warn, error, critical, off };
enum class LogFormat { text, json };

std::string_view to_string(FsyncMode mode) noexcept;
std::string_view to_string(LogLevel level) noexcept;
std::string_view to_string(LogFormat format) noexcept;

// One entry of --join: a peer address, or "dns:NAME:PORT" meaning every A/AAAA
// record of NAME (e.g. a Kubernetes headless service).
struct JoinSeed {
  enum class Kind { address, dns };
  Kind kind = Kind::address;
  HostPort target;

  std::string to_string() const;
  friend bool operator==(const JoinSeed&, const JoinSeed&) = default;
};

struct Config {
  std::string node_id;                                       // default: host name
  std::optional<HostPort> mqtt_listen = HostPort{"0.0.0.0", 1883};  // nullopt: off
  std::optional<HostPort> mqtts_listen;
  std::optional<HostPort> ws_listen;
  std::optional<HostPort> http_listen = HostPort{"0.0.0.0", 8080};
  std::filesystem::path tls_cert;  // empty: unset (same for every path below)
  std::filesystem::path tls_key;
  std::filesystem::path tls_ca;
  std::filesystem::path data_dir = "./data";
  std::optional<HostPort> cluster_listen;     // nullopt: single node
  std::optional<HostPort> cluster_advertise;  // nullopt: derived from cluster_listen
  std::vector<JoinSeed> join;
  std::string cluster_secret;  // never logged
  std::filesystem::path cluster_secret_file;
  // Mutual TLS between nodes: all three, or none (plain).
  std::filesystem::path cluster_tls_cert;
  std::filesystem::path cluster_tls_key;
  std::filesystem::path cluster_tls_ca;
  std::uint32_t replication_factor = 2;
  FsyncMode fsync = FsyncMode::batch;
  // --fsync batch: how long a group commit waits for more writes after the
  // first. 0 (measured best, bench/RESULTS.md "Durability"): none; the writes
  // that arrive while one commit syncs form the next.
  std::uint32_t fsync_interval_ms = 0;
  std::uint32_t threads = 1;  // default: number of cores
  LogLevel log_level = LogLevel::info;
  LogFormat log_format = LogFormat::text;
  // The admin API's bearer token (--http-token, or the first line of
  // --http-token-file); empty: the API is read-only. Never logged.
  std::string http_token;
  std::filesystem::path http_token_file;
  // SIGTERM/SIGINT: /readyz says 503 for drain_delay seconds while the
  // listeners still accept (load balancers notice), then clients are told to
  // go; the process exits by shutdown_timeout seconds after the signal.
  std::uint32_t shutdown_timeout = 30;
  std::uint32_t drain_delay = 0;
  std::uint32_t max_packet_size = 1024 * 1024;
  std::uint16_t max_keepalive = 65535;
  std::uint16_t receive_maximum = 128;
  std::uint16_t max_inflight = 128;
  std::uint32_t max_queued = 100000;
  std::uint32_t max_queued_bytes = 64 * 1024 * 1024;
  std::uint16_t topic_alias_maximum = 64;
  std::uint32_t max_connections = 0;  // 0: no limit
  std::uint32_t max_topic_levels = 128;
  std::uint32_t max_topic_length = 65535;
  std::uint32_t sys_interval = 10;  // seconds between $SYS publications; 0: off
  std::filesystem::path acl_file;
  std::filesystem::path password_file;
  // nullopt: anonymous clients are allowed exactly when there is no password file.
  std::optional<bool> allow_anonymous;
  std::filesystem::path config_file;  // the --config file read, if any

  bool anonymous_allowed() const { return allow_anonymous.value_or(password_file.empty()); }
};

// What parse_config() returns instead of a Config: the process should print
// `message` (stdout for exit code 0, stderr otherwise) and exit.
struct ConfigExit {
  int exit_code = 0;    // 0 for --help/--version, 2 for a bad flag or config
  std::string message;  // for exit code 2: one line naming the flag
};

// Facts the defaults depend on, injectable for tests.
struct SystemDefaults {
  std::string host_name;
  unsigned cores = 1;
};
SystemDefaults system_defaults();

// Returns the value of an environment variable, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup process_environment();

std::variant<Config, ConfigExit> parse_config(int argc, const char* const* argv,
                                              const EnvLookup& env,
                                              const SystemDefaults& defaults);
std::variant<Config, ConfigExit> parse_config(int argc, const char* const* argv,
                                              const EnvLookup& env);

// Every setting as (flag name without dashes, value as it would be written),
// in the order of the table, for the startup banner. The secret is masked.
std::vector<std::pair<std::string, std::string>> describe(const Config& config);

// "0.1.0"
std::string_view version() noexcept;

}  // namespace starling::broker
