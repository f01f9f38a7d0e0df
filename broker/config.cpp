#include "broker/config.h"

#include <CLI/CLI.hpp>
#include <yaml-cpp/yaml.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <system_error>
#include <thread>

#ifndef STARLING_VERSION
#error "STARLING_VERSION must be defined by the build"
#endif

namespace starling::broker {

namespace {

// ---------------------------------------------------------------------------
// Value parsers. Each returns an empty string on success, else a short reason;
// the caller prefixes the flag name and says where the value came from.

std::string in_quotes(std::string_view text) { return "'" + std::string{text} + "'"; }

template <class T>
std::string parse_uint(const std::string& text, std::uint64_t min, std::uint64_t max, T& out) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  const bool digits = !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) {
    return std::isdigit(c) != 0;
  });
  if (!digits) return in_quotes(text) + " is not a whole number";
  if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max) {
    return in_quotes(text) + " is out of range " + std::to_string(min) + ".." + std::to_string(max);
  }
  out = static_cast<T>(value);
  return {};
}

// Plain bytes, or a whole number of KiB or MiB ("1MiB").
std::string parse_size(const std::string& text, std::uint64_t max, std::uint32_t& out) {
  std::string digits = text;
  std::uint64_t unit = 1;
  for (const auto& [suffix, factor] :
       {std::pair<std::string_view, std::uint64_t>{"KiB", 1024}, {"MiB", 1024 * 1024}}) {
    if (std::string_view{text}.ends_with(suffix)) {
      digits = text.substr(0, text.size() - suffix.size());
      unit = factor;
    }
  }
  std::uint64_t count = 0;
  const std::string error = parse_uint(digits, 1, max / unit, count);
  if (!error.empty()) {
    return in_quotes(text) + " is not a size from 1 to " + std::to_string(max) +
           " bytes (plain bytes, or with KiB or MiB)";
  }
  out = static_cast<std::uint32_t>(count * unit);
  return {};
}

std::string parse_bool(const std::string& text, std::optional<bool>& out) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "true" || lower == "yes" || lower == "on" || lower == "1") {
    out = true;
  } else if (lower == "false" || lower == "no" || lower == "off" || lower == "0") {
    out = false;
  } else {
    return in_quotes(text) + " is not true or false";
  }
  return {};
}

// A listener: HOST:PORT, or "off" to disable it (needed to switch off in the
// environment or on the command line what a config file turned on).
std::string parse_listener(const std::string& text, std::optional<HostPort>& out) {
  if (text == "off") {
    out.reset();
    return {};
  }
  std::string error;
  out = parse_host_port(text, error);
  return out ? std::string{} : in_quotes(text) + ": " + error;
}

// An address peers dial: a real host and a real port.
std::string parse_dialable(const std::string& text, HostPort& out) {
  std::string error;
  auto parsed = parse_host_port(text, error);
  if (!parsed) return in_quotes(text) + ": " + error;
  if (parsed->port == 0) return in_quotes(text) + ": port 0 cannot be dialled";
  if (parsed->is_wildcard()) {
    return in_quotes(text) + ": " + parsed->host + " cannot be dialled; give a reachable address";
  }
  out = *parsed;
  return {};
}

std::string parse_join(const std::string& text, std::vector<JoinSeed>& out) {
  out.clear();
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    start = comma + 1;
    if (item.empty()) return "empty entry in " + in_quotes(text);

    JoinSeed seed;
    if (item.starts_with("dns:")) {
      seed.kind = JoinSeed::Kind::dns;
      item.erase(0, 4);
      std::string error;
      auto target = parse_host_port(item, error);
      if (!target || !is_valid_host_name(target->host)) {
        return in_quotes("dns:" + item) + " is not dns:NAME:PORT";
      }
      if (target->port == 0) return in_quotes("dns:" + item) + ": port 0 cannot be dialled";
      seed.target = *target;
    } else {
      const std::string error = parse_dialable(item, seed.target);
      if (!error.empty()) return error;
    }
    out.push_back(std::move(seed));
  }
  return {};
}

std::string parse_file(const std::string& text, std::filesystem::path& out) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(text, ec)) {
    return "file " + in_quotes(text) + " does not exist or is not a regular file";
  }
  out = text;
  return {};
}

// The token is the file's first line (a trailing newline is not part of it);
// `flag` is the setting it cannot be used with.
std::string read_token_file(const std::string& text, std::filesystem::path& path, std::string& token,
                            std::string_view flag) {
  if (!token.empty()) return "cannot be used together with --" + std::string{flag};  // applied first, see the table
  if (std::string error = parse_file(text, path); !error.empty()) return error;
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "cannot read " + in_quotes(text);
  while (!line.empty() && (line.back() == '\r' || std::isspace(static_cast<unsigned char>(line.back())))) line.pop_back();
  if (line.empty()) return "file " + in_quotes(text) + " has no token on its first line";
  token = line;
  return {};
}

std::string parse_node_id(const std::string& text, std::string& out) {
  const bool ok = !text.empty() && text.size() <= 128 &&
                  std::all_of(text.begin(), text.end(), [](unsigned char c) {
                    return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.';
                  });
  if (!ok) return in_quotes(text) + " is not 1 to 128 letters, digits, '-', '_' or '.'";
  out = text;
  return {};
}

template <class Enum, std::size_t N>
std::string parse_enum(const std::string& text, const std::array<Enum, N>& values, Enum& out) {
  std::string allowed;
  for (Enum value : values) {
    if (text == to_string(value)) {
      out = value;
      return {};
    }
    allowed += (allowed.empty() ? "" : "|") + std::string{to_string(value)};
  }
  return in_quotes(text) + " is not one of " + allowed;
}

// The largest MQTT packet: 1 byte of type, 4 of length, 268435455 of body.
constexpr std::uint64_t max_mqtt_packet = 268435460;

// ---------------------------------------------------------------------------
// The table: one row per setting, in DESIGN.md's order. `name` is the flag
// without dashes, which is also the YAML key; the environment variable is
// derived from it.

using Apply = std::string (*)(Config&, const std::string&);

struct Setting {
  std::string_view name;
  std::string_view value_name;
  std::string_view help;
  Apply apply;
};

constexpr std::array<Setting, 41> settings{{
    {"node-id", "NAME", "unique, stable name of this node (default: host name)",
     [](Config& c, const std::string& v) { return parse_node_id(v, c.node_id); }},
    {"mqtt-listen", "HOST:PORT", "MQTT over TCP, or off (default: 0.0.0.0:1883)",
     [](Config& c, const std::string& v) { return parse_listener(v, c.mqtt_listen); }},
    {"mqtts-listen", "HOST:PORT", "MQTT over TLS (needs --tls-cert, --tls-key; default: off)",
     [](Config& c, const std::string& v) { return parse_listener(v, c.mqtts_listen); }},
    {"tls-cert", "FILE", "PEM certificate chain for --mqtts-listen",
     [](Config& c, const std::string& v) { return parse_file(v, c.tls_cert); }},
    {"tls-key", "FILE", "PEM private key for --mqtts-listen",
     [](Config& c, const std::string& v) { return parse_file(v, c.tls_key); }},
    {"tls-ca", "FILE", "PEM CA bundle; when set, clients must present a certificate",
     [](Config& c, const std::string& v) { return parse_file(v, c.tls_ca); }},
    {"ws-listen", "HOST:PORT", "MQTT over WebSocket, path /mqtt (default: off)",
     [](Config& c, const std::string& v) { return parse_listener(v, c.ws_listen); }},
    {"http-listen", "HOST:PORT", "/metrics, /healthz, /readyz, admin API (default: 0.0.0.0:8080)",
     [](Config& c, const std::string& v) { return parse_listener(v, c.http_listen); }},
    {"http-token", "TOKEN", "bearer token the admin API asks for; without one the API is read-only (default: none)",
     [](Config& c, const std::string& v) {
       if (v.empty()) return std::string{"the token must not be empty"};
       c.http_token = v;
       return std::string{};
     }},
    {"http-token-file", "FILE", "file whose first line is the admin API's bearer token (default: none)",
     [](Config& c, const std::string& v) { return read_token_file(v, c.http_token_file, c.http_token, "http-token"); }},
    {"data-dir", "DIR", "RocksDB directory (default: ./data)",
     [](Config& c, const std::string& v) {
       if (v.empty()) return std::string{"the directory must not be empty"};
       c.data_dir = v;
       return std::string{};
     }},
    {"cluster-listen", "HOST:PORT", "gRPC between nodes (default: off, single node)",
     [](Config& c, const std::string& v) { return parse_listener(v, c.cluster_listen); }},
    {"cluster-advertise", "HOST:PORT", "address peers dial (default: --cluster-listen)",
     [](Config& c, const std::string& v) {
       HostPort address;
       std::string error = parse_dialable(v, address);
       if (error.empty()) c.cluster_advertise = address;
       return error;
     }},
    {"join", "LIST", "seeds: host:port,... or dns:NAME:PORT (default: none)",
     [](Config& c, const std::string& v) { return parse_join(v, c.join); }},
    {"cluster-secret", "SECRET", "shared secret every node-to-node call carries",
     [](Config& c, const std::string& v) {
       c.cluster_secret = v;
       return std::string{};
     }},
    {"cluster-secret-file", "FILE", "file whose first line is the cluster secret (default: none)",
     [](Config& c, const std::string& v) {
       return read_token_file(v, c.cluster_secret_file, c.cluster_secret, "cluster-secret");
     }},
    {"cluster-tls-cert", "FILE", "PEM certificate chain of this node for mutual TLS between nodes; it must name "
     "the host peers dial (default: none, plain)",
     [](Config& c, const std::string& v) { return parse_file(v, c.cluster_tls_cert); }},
    {"cluster-tls-key", "FILE", "PEM private key for --cluster-tls-cert",
     [](Config& c, const std::string& v) { return parse_file(v, c.cluster_tls_key); }},
    {"cluster-tls-ca", "FILE", "PEM CA bundle every node's certificate must chain to",
     [](Config& c, const std::string& v) { return parse_file(v, c.cluster_tls_ca); }},
    {"replication-factor", "N", "copies of every persistent session, owner included (default: 2)",
     [](Config& c, const std::string& v) { return parse_uint(v, 1, 64, c.replication_factor); }},
    {"fsync", "always|batch|never", "when an acknowledged QoS 1/2 message is on disk (default: batch)",
     [](Config& c, const std::string& v) {
       return parse_enum(v, std::array{FsyncMode::always, FsyncMode::batch, FsyncMode::never},
                         c.fsync);
     }},
    {"fsync-interval", "MS",
     "with --fsync batch, how long a group commit waits for more writes after the first; 0: none, what arrives "
     "during one commit's sync goes in the next (default: 0)",
     [](Config& c, const std::string& v) { return parse_uint(v, 0, 1000, c.fsync_interval_ms); }},
    {"threads", "N", "network worker threads (default: number of cores)",
     [](Config& c, const std::string& v) { return parse_uint(v, 1, 1024, c.threads); }},
    {"log-level", "LEVEL", "trace|debug|info|warn|error|critical|off (default: info)",
     [](Config& c, const std::string& v) {
       return parse_enum(v,
                         std::array{LogLevel::trace, LogLevel::debug, LogLevel::info,
                                    LogLevel::warn, LogLevel::error, LogLevel::critical,
                                    LogLevel::off},
                         c.log_level);
     }},
    {"log-format", "text|json", "one line per event, as text or as a JSON object (default: text)",
     [](Config& c, const std::string& v) {
       return parse_enum(v, std::array{LogFormat::text, LogFormat::json}, c.log_format);
     }},
    {"shutdown-timeout", "SECONDS", "after SIGTERM, exit within this long (default: 30)",
     [](Config& c, const std::string& v) { return parse_uint(v, 1, 3600, c.shutdown_timeout); }},
    {"drain-delay", "SECONDS",
     "after SIGTERM, how long /readyz says 503 while listeners still accept, before clients are told to go "
     "(default: 0)",
     [](Config& c, const std::string& v) { return parse_uint(v, 0, 3600, c.drain_delay); }},
    {"max-packet-size", "BYTES", "largest packet accepted, e.g. 262144 or 1MiB (default: 1MiB)",
     [](Config& c, const std::string& v) { return parse_size(v, max_mqtt_packet, c.max_packet_size); }},
    {"max-keepalive", "SECONDS", "longest keep-alive granted (default: 65535)",
     [](Config& c, const std::string& v) { return parse_uint(v, 1, 65535, c.max_keepalive); }},
    {"receive-maximum", "N", "unacknowledged QoS 1/2 PUBLISHes a client may send (default: 128)",
     [](Config& c, const std::string& v) { return parse_uint(v, 1, 65535, c.receive_maximum); }},
    {"max-inflight", "N", "unacknowledged QoS 1/2 deliveries to one client (default: 128)",
     [](Config& c, const std::string& v) { return parse_uint(v, 1, 65535, c.max_inflight); }},
    {"max-queued", "N", "queued messages per offline or slow session (default: 100000)",
     [](Config& c, const std::string& v) {
       return parse_uint(v, 1, std::numeric_limits<std::uint32_t>::max(), c.max_queued);
     }},
    {"max-queued-bytes", "BYTES", "payload bytes queued per offline or slow session, e.g. 64MiB (default: 64MiB)",
     [](Config& c, const std::string& v) {
       return parse_size(v, std::numeric_limits<std::uint32_t>::max(), c.max_queued_bytes);
     }},
    {"topic-alias-maximum", "N", "topic aliases a client may use towards the node, 0 = none (default: 64)",
     [](Config& c, const std::string& v) { return parse_uint(v, 0, 65535, c.topic_alias_maximum); }},
    {"max-connections", "N", "client connections accepted at once, 0 = no limit (default: 0)",
     [](Config& c, const std::string& v) {
       return parse_uint(v, 0, std::numeric_limits<std::uint32_t>::max(), c.max_connections);
     }},
    {"max-topic-levels", "N", "levels in a topic name or filter (default: 128)",
     [](Config& c, const std::string& v) { return parse_uint(v, 1, 65535, c.max_topic_levels); }},
    {"max-topic-length", "BYTES", "bytes in a topic name or filter (default: 65535)",
     [](Config& c, const std::string& v) { return parse_uint(v, 1, 65535, c.max_topic_length); }},
    {"sys-interval", "SECONDS", "how often $SYS/broker/... statistics are published, 0 = never (default: 10)",
     [](Config& c, const std::string& v) { return parse_uint(v, 0, 86400, c.sys_interval); }},
    {"acl-file", "FILE", "topic rules per user/client (default: none)",
     [](Config& c, const std::string& v) { return parse_file(v, c.acl_file); }},
    {"password-file", "FILE", "users with salted hashes (default: none)",
     [](Config& c, const std::string& v) { return parse_file(v, c.password_file); }},
    {"allow-anonymous", "BOOL",
     "accept clients without credentials; =false to refuse (default: true unless --password-file)",
     [](Config& c, const std::string& v) { return parse_bool(v, c.allow_anonymous); }},
}};

std::string env_name(std::string_view flag) {
  std::string name = "STARLING_";
  for (char c : flag) {
    name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

std::string one_line(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text;
}

ConfigExit usage_error(std::string_view flag, std::string_view reason, std::string_view origin = {}) {
  std::string message = "starling: --" + std::string{flag} + ": " + std::string{reason};
  if (!origin.empty()) message += " (from " + std::string{origin} + ")";
  return {2, one_line(std::move(message))};
}

// Reads the YAML file into flag name -> value text. Keys are flag names
// without dashes; a list is accepted for `join`.
std::variant<std::vector<std::pair<std::string, std::string>>, ConfigExit> read_config_file(
    const std::string& path, std::string_view origin) {
  auto fail = [&](const std::string& reason) { return usage_error("config", reason, origin); };
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return fail("file " + in_quotes(path) + " does not exist or is not a regular file");
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    std::string where;
    if (!e.mark.is_null()) {
      where = " at line " + std::to_string(e.mark.line + 1) + ", column " +
              std::to_string(e.mark.column + 1);
    }
    return fail(in_quotes(path) + " is not valid YAML" + where + ": " + e.msg);
  }
  std::vector<std::pair<std::string, std::string>> values;
  if (root.IsNull()) return values;  // an empty file sets nothing
  if (!root.IsMap()) return fail(in_quotes(path) + ": expected a mapping of setting: value");

  for (const auto& entry : root) {
    const std::string line = std::to_string(entry.first.Mark().line + 1);
    if (!entry.first.IsScalar()) return fail(in_quotes(path) + " line " + line + ": a key must be a name");
    const std::string key = entry.first.Scalar();
    const bool known = std::any_of(settings.begin(), settings.end(),
                                   [&](const Setting& s) { return s.name == key; });
    if (!known) return fail(in_quotes(path) + " line " + line + ": unknown key " + in_quotes(key));

    const YAML::Node& value = entry.second;
    if (value.IsNull()) continue;  // "key:" with nothing after it: not set
    if (value.IsScalar()) {
      values.emplace_back(key, value.Scalar());
    } else if (value.IsSequence() && key == "join") {
      std::string joined;
      for (const auto& item : value) {
        if (!item.IsScalar()) return fail(in_quotes(path) + " line " + line + ": join entries must be text");
        joined += (joined.empty() ? "" : ",") + item.Scalar();
      }
      values.emplace_back(key, joined);
    } else {
      return fail(in_quotes(path) + " line " + line + ": " + in_quotes(key) + " needs a single value");
    }
  }
  return values;
}

bool ports_clash(const HostPort& a, const HostPort& b) {
  return a.port != 0 && a.port == b.port && (a.host == b.host || a.is_wildcard() || b.is_wildcard());
}

// Checks that involve several settings; run after each one parsed alone.
std::optional<ConfigExit> check_consistency(const Config& c) {
  if (!c.mqtt_listen && !c.mqtts_listen && !c.ws_listen) {
    return usage_error("mqtt-listen", "is off and so are --mqtts-listen and --ws-listen: no MQTT listener left");
  }
  if (c.mqtts_listen && (c.tls_cert.empty() || c.tls_key.empty())) {
    return usage_error("mqtts-listen", "needs --tls-cert and --tls-key");
  }
  if (c.cluster_advertise && !c.cluster_listen) {
    return usage_error("cluster-advertise", "needs --cluster-listen");
  }
  if (!c.join.empty() && !c.cluster_listen) return usage_error("join", "needs --cluster-listen");
  const int cluster_tls = !c.cluster_tls_cert.empty() + !c.cluster_tls_key.empty() + !c.cluster_tls_ca.empty();
  if (cluster_tls != 0 && cluster_tls != 3) {
    return usage_error(c.cluster_tls_cert.empty() ? "cluster-tls-key" : "cluster-tls-cert",
                       "mutual TLS between nodes needs all of --cluster-tls-cert, --cluster-tls-key and "
                       "--cluster-tls-ca");
  }
  if (cluster_tls != 0 && !c.cluster_listen) return usage_error("cluster-tls-cert", "needs --cluster-listen");
  if (c.drain_delay >= c.shutdown_timeout) {
    return usage_error("drain-delay", "must be shorter than --shutdown-timeout (" +
                                          std::to_string(c.shutdown_timeout) + " s)");
  }

  const std::array<std::pair<std::string_view, const std::optional<HostPort>*>, 5> listeners{{
      {"mqtt-listen", &c.mqtt_listen},
      {"mqtts-listen", &c.mqtts_listen},
      {"ws-listen", &c.ws_listen},
      {"http-listen", &c.http_listen},
      {"cluster-listen", &c.cluster_listen},
  }};
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      const auto& [name, address] = listeners[i];
      const auto& [other_name, other] = listeners[j];
      if (*address && *other && ports_clash(**address, **other)) {
        return usage_error(name, "port " + std::to_string((*address)->port) +
                                     " is already used by --" + std::string{other_name});
      }
    }
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(FsyncMode mode) noexcept {
  switch (mode) {
    case FsyncMode::always: return "always";
    case FsyncMode::batch: return "batch";
    case FsyncMode::never: return "never";
  }
  return "?";
}

std::string_view to_string(LogFormat format) noexcept {
  return format == LogFormat::json ? "json" : "text";
}

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::trace: return "trace";
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warn: return "warn";
    case LogLevel::error: return "error";
    case LogLevel::critical: return "critical";
    case LogLevel::off: return "off";
  }
  return "?";
}

std::string JoinSeed::to_string() const {
  return (kind == Kind::dns ? "dns:" : "") + target.to_string();
}

std::string_view version() noexcept { return STARLING_VERSION; }

SystemDefaults system_defaults() {
  SystemDefaults defaults;
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) == 0) defaults.host_name = name.data();
  defaults.cores = std::max(1u, std::thread::hardware_concurrency());
  return defaults;
}

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string{value};
  };
}

std::variant<Config, ConfigExit> parse_config(int argc, const char* const* argv,
                                              const EnvLookup& env) {
  return parse_config(argc, argv, env, system_defaults());
}

std::variant<Config, ConfigExit> parse_config(int argc, const char* const* argv,
                                              const EnvLookup& env,
                                              const SystemDefaults& defaults) {
  // 1. The command line, every value kept as text for now.
  CLI::App app{"Starling: a clustered MQTT broker.", "starling"};
  app.allow_extras();  // so an unknown flag gets our one-line message
  app.footer(
      "Every setting is also an environment variable STARLING_<FLAG> (--data-dir:\n"
      "STARLING_DATA_DIR) and a key of the --config YAML file (data-dir: ...).\n"
      "A flag wins over the environment, which wins over the file.");
  std::array<std::string, settings.size()> flag_values;
  std::array<CLI::Option*, settings.size()> options{};
  for (std::size_t i = 0; i < settings.size(); ++i) {
    const Setting& s = settings[i];
    const std::string flag = "--" + std::string{s.name};
    if (s.name == "allow-anonymous") {
      // A bare --allow-anonymous means true; --allow-anonymous=false also works.
      options[i] = app.add_flag(flag, flag_values[i], std::string{s.help});
    } else {
      options[i] = app.add_option(flag, flag_values[i], std::string{s.help});
      options[i]->type_name(std::string{s.value_name});
    }
    options[i]->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  std::string config_flag;
  CLI::Option* config_option =
      app.add_option("--config", config_flag, "YAML file of settings (keys: flag names)")
          ->type_name("FILE")
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  bool show_version = false;
  app.add_flag("--version", show_version, "print the version and exit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return ConfigExit{0, app.help()};
  } catch (const CLI::ParseError& e) {
    std::string text = e.what();
    // CLI11 says "--threads: 1 required N missing" for a flag at the end.
    if (text.starts_with("--") && text.ends_with(" missing")) {
      text = text.substr(0, text.find(':')) + ": needs a value";
    }
    return ConfigExit{2, one_line("starling: " + text)};
  }
  if (const auto extras = app.remaining(); !extras.empty()) {
    const std::string& first = extras.front();
    if (first.starts_with("-")) {
      return ConfigExit{2, one_line("starling: unknown flag " + first.substr(0, first.find('=')) +
                                    " (see --help)")};
    }
    return ConfigExit{2, one_line("starling: unexpected argument " + in_quotes(first) + " (see --help)")};
  }
  if (show_version) return ConfigExit{0, "starling " + std::string{version()}};

  // Empty environment variables count as unset: container tooling often
  // defines a variable with no value rather than leaving it out.
  auto env_value = [&](const std::string& name) -> std::optional<std::string> {
    auto value = env ? env(name) : std::nullopt;
    if (value && value->empty()) value.reset();
    return value;
  };

  // 2. The config file, named by --config or STARLING_CONFIG.
  Config config;
  std::vector<std::pair<std::string, std::string>> file_values;
  std::string file_origin;
  {
    std::optional<std::string> path;
    std::string origin;
    if (config_option->count() > 0) {
      path = config_flag;
    } else if ((path = env_value("STARLING_CONFIG"))) {
      origin = "environment variable STARLING_CONFIG";
    }
    if (path) {
      auto read = read_config_file(*path, origin);
      if (auto* exit = std::get_if<ConfigExit>(&read)) return *exit;
      file_values = std::move(std::get<0>(read));
      config.config_file = *path;
      file_origin = "config file " + in_quotes(*path);
    }
  }

  config.threads = std::clamp(defaults.cores, 1u, 1024u);

  // 3. Each setting from the strongest source that has it.
  for (std::size_t i = 0; i < settings.size(); ++i) {
    const Setting& s = settings[i];
    std::optional<std::string> value;
    std::string origin;
    if (options[i]->count() > 0) {
      value = flag_values[i];
    } else if ((value = env_value(env_name(s.name)))) {
      origin = "environment variable " + env_name(s.name);
    } else {
      // The last occurrence wins, as on the command line.
      for (const auto& [key, text] : file_values) {
        if (key == s.name) value = text;
      }
      origin = file_origin;
    }
    if (!value) continue;
    if (const std::string error = s.apply(config, *value); !error.empty()) {
      return usage_error(s.name, error, origin);
    }
  }

  // 4. The node id defaults to the host name, which must then be a valid id.
  if (config.node_id.empty()) {
    if (const std::string error = parse_node_id(defaults.host_name, config.node_id); !error.empty()) {
      return usage_error("node-id", "not set, and the host name " + error);
    }
  }
  if (auto exit = check_consistency(config)) return *exit;
  return config;
}

std::vector<std::pair<std::string, std::string>> describe(const Config& c) {
  auto listener = [](const std::optional<HostPort>& a) { return a ? a->to_string() : "off"; };
  auto path = [](const std::filesystem::path& p) { return p.empty() ? "none" : p.string(); };
  std::string join;
  for (const auto& seed : c.join) join += (join.empty() ? "" : ",") + seed.to_string();
  return {
      {"node-id", c.node_id},
      {"mqtt-listen", listener(c.mqtt_listen)},
      {"mqtts-listen", listener(c.mqtts_listen)},
      {"tls-cert", path(c.tls_cert)},
      {"tls-key", path(c.tls_key)},
      {"tls-ca", path(c.tls_ca)},
      {"ws-listen", listener(c.ws_listen)},
      {"http-listen", listener(c.http_listen)},
      {"http-token", c.http_token.empty() ? "none (admin API read-only)" : "(set)"},
      {"http-token-file", path(c.http_token_file)},
      {"data-dir", c.data_dir.string()},
      {"cluster-listen", listener(c.cluster_listen)},
      {"cluster-advertise", c.cluster_advertise ? c.cluster_advertise->to_string()
                                                : listener(c.cluster_listen)},
      {"join", join.empty() ? "none" : join},
      {"cluster-secret", c.cluster_secret.empty() ? "none" : "(set)"},
      {"cluster-secret-file", path(c.cluster_secret_file)},
      {"cluster-tls-cert", path(c.cluster_tls_cert)},
      {"cluster-tls-key", path(c.cluster_tls_key)},
      {"cluster-tls-ca", path(c.cluster_tls_ca)},
      {"replication-factor", std::to_string(c.replication_factor)},
      {"fsync", std::string{to_string(c.fsync)}},
      {"fsync-interval", std::to_string(c.fsync_interval_ms) + " ms"},
      {"threads", std::to_string(c.threads)},
      {"log-level", std::string{to_string(c.log_level)}},
      {"log-format", std::string{to_string(c.log_format)}},
      {"shutdown-timeout", std::to_string(c.shutdown_timeout)},
      {"drain-delay", std::to_string(c.drain_delay)},
      {"max-packet-size", std::to_string(c.max_packet_size)},
      {"max-keepalive", std::to_string(c.max_keepalive)},
      {"receive-maximum", std::to_string(c.receive_maximum)},
      {"max-inflight", std::to_string(c.max_inflight)},
      {"max-queued", std::to_string(c.max_queued)},
      {"max-queued-bytes", std::to_string(c.max_queued_bytes)},
      {"topic-alias-maximum", std::to_string(c.topic_alias_maximum)},
      {"max-connections", std::to_string(c.max_connections)},
      {"max-topic-levels", std::to_string(c.max_topic_levels)},
      {"max-topic-length", std::to_string(c.max_topic_length)},
      {"sys-interval", std::to_string(c.sys_interval)},
      {"acl-file", path(c.acl_file)},
      {"password-file", path(c.password_file)},
      {"allow-anonymous", c.anonymous_allowed() ? "true" : "false"},
      {"config", path(c.config_file)},
  };
}

}  // namespace starling::broker
