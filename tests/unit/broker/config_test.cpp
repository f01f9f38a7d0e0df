#include "broker/config.h"
#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <system_error>
#include <vector>

namespace starling::broker {
namespace {

const SystemDefaults test_machine{"test-host", 6};

using starling::test::TempDir;

std::variant<Config, ConfigExit> parse(std::vector<std::string> args,
                                       std::map<std::string, std::string> env = {},
                                       const SystemDefaults& defaults = test_machine) {
  args.insert(args.begin(), "starling");
  std::vector<const char*> argv;
  for (const auto& arg : args) argv.push_back(arg.c_str());
  argv.push_back(nullptr);
  EnvLookup lookup = [env](const std::string& name) -> std::optional<std::string> {
    const auto found = env.find(name);
    if (found == env.end()) return std::nullopt;
    return found->second;
  };
  return parse_config(static_cast<int>(args.size()), argv.data(), lookup, defaults);
}

Config parse_ok(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  auto result = parse(std::move(args), std::move(env));
  if (auto* exit = std::get_if<ConfigExit>(&result)) {
    ADD_FAILURE() << "unexpected exit " << exit->exit_code << ": " << exit->message;
    return {};
  }
  return std::get<Config>(result);
}

// Expects exit status 2 with a one-line message that names `flag`.
::testing::AssertionResult rejected(const std::variant<Config, ConfigExit>& result,
                                    const std::string& flag) {
  const auto* exit = std::get_if<ConfigExit>(&result);
  if (exit == nullptr) return ::testing::AssertionFailure() << "accepted";
  if (exit->exit_code != 2) {
    return ::testing::AssertionFailure() << "exit " << exit->exit_code << ": " << exit->message;
  }
  if (exit->message.find('\n') != std::string::npos) {
    return ::testing::AssertionFailure() << "not one line: " << exit->message;
  }
  if (exit->message.find(flag) == std::string::npos) {
    return ::testing::AssertionFailure() << "does not name " << flag << ": " << exit->message;
  }
  return ::testing::AssertionSuccess() << exit->message;
}

std::string message(const std::variant<Config, ConfigExit>& result) {
  const auto* exit = std::get_if<ConfigExit>(&result);
  return exit != nullptr ? exit->message : std::string{};
}

TEST(Config, DefaultsFollowTheDesignTable) {
  const Config c = parse_ok({});
  EXPECT_EQ(c.node_id, "test-host");
  EXPECT_EQ(c.mqtt_listen, (HostPort{"0.0.0.0", 1883}));
  EXPECT_FALSE(c.mqtts_listen);
  EXPECT_FALSE(c.ws_listen);
  EXPECT_EQ(c.http_listen, (HostPort{"0.0.0.0", 8080}));
  EXPECT_EQ(c.data_dir, "./data");
  EXPECT_FALSE(c.cluster_listen);
  EXPECT_FALSE(c.cluster_advertise);
  EXPECT_TRUE(c.join.empty());
  EXPECT_TRUE(c.cluster_secret.empty());
  EXPECT_EQ(c.replication_factor, 2u);
  EXPECT_EQ(c.fsync, FsyncMode::batch);
  EXPECT_EQ(c.threads, 6u);
  EXPECT_EQ(c.log_level, LogLevel::info);
  EXPECT_EQ(c.max_packet_size, 1024u * 1024u);
  EXPECT_EQ(c.max_keepalive, 65535);
  EXPECT_EQ(c.receive_maximum, 128);
  EXPECT_EQ(c.max_inflight, 128);
  EXPECT_EQ(c.max_queued, 100000u);
  EXPECT_EQ(c.topic_alias_maximum, 64);
  EXPECT_TRUE(c.acl_file.empty());
  EXPECT_TRUE(c.password_file.empty());
  EXPECT_TRUE(c.anonymous_allowed());
  EXPECT_TRUE(c.config_file.empty());
  EXPECT_EQ(c.log_format, LogFormat::text);
  EXPECT_TRUE(c.http_token.empty());
  EXPECT_EQ(c.shutdown_timeout, 30u);
  EXPECT_EQ(c.drain_delay, 0u);
}

TEST(Config, OperationsFlags) {
  TempDir dir;
  const std::string token_file = dir.write("token", "s3cret-token\n");
  const Config c = parse_ok({"--log-format", "json", "--http-token-file", token_file, "--shutdown-timeout", "5",
                             "--drain-delay", "2"});
  EXPECT_EQ(c.log_format, LogFormat::json);
  EXPECT_EQ(c.http_token, "s3cret-token");
  EXPECT_EQ(c.shutdown_timeout, 5u);
  EXPECT_EQ(c.drain_delay, 2u);
  EXPECT_EQ(parse_ok({"--http-token", "abc"}).http_token, "abc");

  EXPECT_TRUE(rejected(parse({"--log-format", "xml"}), "--log-format"));
  EXPECT_TRUE(rejected(parse({"--http-token", "abc", "--http-token-file", token_file}), "--http-token-file"));
  EXPECT_TRUE(rejected(parse({"--http-token-file", dir.write("empty", "\n")}), "--http-token-file"));
  EXPECT_TRUE(rejected(parse({"--drain-delay", "30"}), "--drain-delay"));
  EXPECT_TRUE(rejected(parse({"--shutdown-timeout", "0"}), "--shutdown-timeout"));
}

TEST(Config, ClusterSecretFileAndMutualTls) {
  TempDir dir;
  const std::string secret = dir.write("secret", "cluster-s3cret\n");
  const std::string cert = dir.write("node.pem", "x");
  const std::string key = dir.write("node.key", "x");
  const std::string ca = dir.write("ca.pem", "x");
  EXPECT_EQ(parse_ok({"--cluster-secret-file", secret}).cluster_secret, "cluster-s3cret");
  EXPECT_TRUE(rejected(parse({"--cluster-secret", "a", "--cluster-secret-file", secret}), "--cluster-secret-file"));
  const Config c = parse_ok({"--cluster-listen", "127.0.0.1:0", "--cluster-tls-cert", cert, "--cluster-tls-key", key,
                             "--cluster-tls-ca", ca});
  EXPECT_EQ(c.cluster_tls_ca, ca);
  EXPECT_TRUE(rejected(parse({"--cluster-listen", "127.0.0.1:0", "--cluster-tls-cert", cert}), "--cluster-tls-cert"));
  EXPECT_TRUE(rejected(parse({"--cluster-listen", "127.0.0.1:0", "--cluster-tls-key", key, "--cluster-tls-ca", ca}),
                       "--cluster-tls-key"));
  EXPECT_TRUE(rejected(parse({"--cluster-tls-cert", cert, "--cluster-tls-key", key, "--cluster-tls-ca", ca}),
                       "--cluster-tls-cert"));
  EXPECT_TRUE(rejected(parse({"--cluster-listen", "127.0.0.1:0", "--cluster-tls-cert", (dir.path() / "missing").string()}),
                       "--cluster-tls-cert"));
}

TEST(Config, EveryFlagIsAccepted) {
  TempDir dir;
  const std::string cert = dir.write("cert.pem", "x");
  const std::string key = dir.write("key.pem", "x");
  const std::string ca = dir.write("ca.pem", "x");
  const std::string acl = dir.write("acl", "x");
  const std::string passwords = dir.write("passwords", "x");
  const Config c = parse_ok({
      "--node-id", "node-1",  "--mqtt-listen", "127.0.0.1:0", "--mqtts-listen", "[::1]:8883",
      "--tls-cert", cert,     "--tls-key", key,               "--tls-ca", ca,
      "--ws-listen", "localhost:8083", "--http-listen=0.0.0.0:9090", "--data-dir", "/var/lib/s",
      "--cluster-listen", "0.0.0.0:7000", "--cluster-advertise", "node-1.starling:7000",
      "--join", "10.0.0.2:7000, dns:starling-headless.default.svc.cluster.local:7000",
      "--cluster-secret", "s3cret", "--replication-factor", "3", "--fsync", "always",
      "--threads", "8", "--log-level", "debug", "--max-packet-size", "256KiB",
      "--max-keepalive", "600", "--receive-maximum", "10", "--max-inflight", "20",
      "--max-queued", "5000", "--topic-alias-maximum", "0", "--acl-file", acl,
      "--password-file", passwords, "--allow-anonymous",
  });
  EXPECT_EQ(c.node_id, "node-1");
  EXPECT_EQ(c.mqtt_listen, (HostPort{"127.0.0.1", 0}));
  EXPECT_EQ(c.mqtts_listen, (HostPort{"::1", 8883}));
  EXPECT_EQ(c.tls_cert, cert);
  EXPECT_EQ(c.tls_key, key);
  EXPECT_EQ(c.tls_ca, ca);
  EXPECT_EQ(c.ws_listen, (HostPort{"localhost", 8083}));
  EXPECT_EQ(c.http_listen, (HostPort{"0.0.0.0", 9090}));
  EXPECT_EQ(c.data_dir, "/var/lib/s");
  EXPECT_EQ(c.cluster_listen, (HostPort{"0.0.0.0", 7000}));
  EXPECT_EQ(c.cluster_advertise, (HostPort{"node-1.starling", 7000}));
  ASSERT_EQ(c.join.size(), 2u);
  EXPECT_EQ(c.join[0], (JoinSeed{JoinSeed::Kind::address, {"10.0.0.2", 7000}}));
  EXPECT_EQ(c.join[1].kind, JoinSeed::Kind::dns);
  EXPECT_EQ(c.join[1].to_string(), "dns:starling-headless.default.svc.cluster.local:7000");
  EXPECT_EQ(c.cluster_secret, "s3cret");
  EXPECT_EQ(c.replication_factor, 3u);
  EXPECT_EQ(c.fsync, FsyncMode::always);
  EXPECT_EQ(c.threads, 8u);
  EXPECT_EQ(c.log_level, LogLevel::debug);
  EXPECT_EQ(c.max_packet_size, 262144u);
  EXPECT_EQ(c.max_keepalive, 600);
  EXPECT_EQ(c.receive_maximum, 10);
  EXPECT_EQ(c.max_inflight, 20);
  EXPECT_EQ(c.max_queued, 5000u);
  EXPECT_EQ(c.topic_alias_maximum, 0);
  EXPECT_EQ(c.acl_file, acl);
  EXPECT_EQ(c.password_file, passwords);
  EXPECT_TRUE(c.anonymous_allowed());
}

TEST(Config, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  TempDir dir;
  const std::string file = dir.write("starling.yaml", "threads: 2\ndata-dir: /from/file\n");
  const std::map<std::string, std::string> env{{"STARLING_THREADS", "3"}};

  EXPECT_EQ(parse_ok({}).threads, 6u);                                          // default
  EXPECT_EQ(parse_ok({"--config", file}).threads, 2u);                          // file
  EXPECT_EQ(parse_ok({"--config", file}, env).threads, 3u);                     // env > file
  EXPECT_EQ(parse_ok({"--config", file, "--threads", "4"}, env).threads, 4u);   // flag > env
  EXPECT_EQ(parse_ok({"--threads=5"}, env).threads, 5u);                        // flag > env
  // Settings from different levels combine.
  const Config c = parse_ok({"--config", file}, env);
  EXPECT_EQ(c.data_dir, "/from/file");
  EXPECT_EQ(c.config_file, file);
}

TEST(Config, EnvironmentVariableNamesFollowTheFlags) {
  const Config c = parse_ok({}, {{"STARLING_DATA_DIR", "/env/data"},
                                 {"STARLING_MQTT_LISTEN", "127.0.0.1:1884"},
                                 {"STARLING_LOG_LEVEL", "warn"},
                                 {"STARLING_TOPIC_ALIAS_MAXIMUM", "7"},
                                 {"STARLING_CLUSTER_SECRET", "from-env"},
                                 {"STARLING_NODE_ID", "env-node"}});
  EXPECT_EQ(c.data_dir, "/env/data");
  EXPECT_EQ(c.mqtt_listen, (HostPort{"127.0.0.1", 1884}));
  EXPECT_EQ(c.log_level, LogLevel::warn);
  EXPECT_EQ(c.topic_alias_maximum, 7);
  EXPECT_EQ(c.cluster_secret, "from-env");
  EXPECT_EQ(c.node_id, "env-node");
}

TEST(Config, EmptyEnvironmentVariableCountsAsUnset) {
  EXPECT_EQ(parse_ok({}, {{"STARLING_THREADS", ""}}).threads, 6u);
}

TEST(Config, ConfigFileCanComeFromTheEnvironment) {
  TempDir dir;
  const std::string file = dir.write("s.yaml", "fsync: never\n");
  EXPECT_EQ(parse_ok({}, {{"STARLING_CONFIG", file}}).fsync, FsyncMode::never);
}

TEST(Config, ConfigFileAcceptsEveryKeyAndAJoinList) {
  TempDir dir;
  const std::string file = dir.write("s.yaml",
                                     "# comment\n"
                                     "node-id: yaml-node\n"
                                     "ws-listen: \"[::]:8083\"\n"
                                     "cluster-listen: 0.0.0.0:7000\n"
                                     "cluster-advertise: 10.1.1.1:7000\n"
                                     "join:\n  - 10.0.0.2:7000\n  - 10.0.0.3:7000\n"
                                     "allow-anonymous: false\n"
                                     "max-packet-size: 1MiB\n"
                                     "tls-ca:\n");  // empty value: not set
  const Config c = parse_ok({"--config", file});
  EXPECT_EQ(c.node_id, "yaml-node");
  EXPECT_EQ(c.ws_listen, (HostPort{"::", 8083}));
  EXPECT_EQ(c.join.size(), 2u);
  EXPECT_FALSE(c.anonymous_allowed());
  EXPECT_EQ(c.max_packet_size, 1024u * 1024u);
  EXPECT_TRUE(c.tls_ca.empty());
}

TEST(Config, EmptyConfigFileSetsNothing) {
  TempDir dir;
  EXPECT_EQ(parse_ok({"--config", dir.write("empty.yaml", "")}).threads, 6u);
}

TEST(Config, ListenersCanBeSwitchedOff) {
  TempDir dir;
  const std::string file = dir.write("s.yaml", "ws-listen: 0.0.0.0:8083\n");
  const Config c = parse_ok({"--config", file, "--ws-listen", "off", "--http-listen", "off"});
  EXPECT_FALSE(c.ws_listen);
  EXPECT_FALSE(c.http_listen);
}

TEST(Config, BadValuesNameTheFlag) {
  EXPECT_TRUE(rejected(parse({"--threads", "abc"}), "--threads"));
  EXPECT_TRUE(rejected(parse({"--threads", "0"}), "--threads"));
  EXPECT_TRUE(rejected(parse({"--threads", "-1"}), "--threads"));
  EXPECT_TRUE(rejected(parse({"--mqtt-listen", "0.0.0.0:70000"}), "--mqtt-listen"));
  EXPECT_TRUE(rejected(parse({"--mqtt-listen", "0.0.0.0"}), "--mqtt-listen"));
  EXPECT_TRUE(rejected(parse({"--mqtt-listen", "::1:1883"}), "--mqtt-listen"));
  EXPECT_TRUE(rejected(parse({"--mqtt-listen", "[::1]1883"}), "--mqtt-listen"));
  EXPECT_TRUE(rejected(parse({"--mqtt-listen", "[nope]:1883"}), "--mqtt-listen"));
  EXPECT_TRUE(rejected(parse({"--mqtt-listen", "300.1.1.1:1883"}), "--mqtt-listen"));
  EXPECT_TRUE(rejected(parse({"--mqtt-listen", "bad host!:1883"}), "--mqtt-listen"));
  EXPECT_TRUE(rejected(parse({"--mqtt-listen", ":1883"}), "--mqtt-listen"));
  EXPECT_TRUE(rejected(parse({"--http-listen", "0.0.0.0:http"}), "--http-listen"));
  EXPECT_TRUE(rejected(parse({"--fsync", "sometimes"}), "--fsync"));
  EXPECT_TRUE(rejected(parse({"--log-level", "loud"}), "--log-level"));
  EXPECT_TRUE(rejected(parse({"--max-packet-size", "0"}), "--max-packet-size"));
  EXPECT_TRUE(rejected(parse({"--max-packet-size", "300000000"}), "--max-packet-size"));
  EXPECT_TRUE(rejected(parse({"--max-packet-size", "1GiB"}), "--max-packet-size"));
  EXPECT_TRUE(rejected(parse({"--receive-maximum", "65536"}), "--receive-maximum"));
  EXPECT_TRUE(rejected(parse({"--receive-maximum", "0"}), "--receive-maximum"));
  EXPECT_TRUE(rejected(parse({"--max-inflight", "1.5"}), "--max-inflight"));
  EXPECT_TRUE(rejected(parse({"--max-queued", "99999999999"}), "--max-queued"));
  EXPECT_TRUE(rejected(parse({"--max-keepalive", "0"}), "--max-keepalive"));
  EXPECT_TRUE(rejected(parse({"--topic-alias-maximum", "65536"}), "--topic-alias-maximum"));
  EXPECT_TRUE(rejected(parse({"--replication-factor", "0"}), "--replication-factor"));
  EXPECT_TRUE(rejected(parse({"--node-id", "has space"}), "--node-id"));
  EXPECT_TRUE(rejected(parse({"--data-dir", ""}), "--data-dir"));
  EXPECT_TRUE(rejected(parse({"--acl-file", "/no/such/file"}), "--acl-file"));
  EXPECT_TRUE(rejected(parse({"--allow-anonymous=maybe"}), "--allow-anonymous"));
  EXPECT_TRUE(rejected(parse({"--cluster-listen", "0.0.0.0:7000", "--join", "a:1,,b:2"}), "--join"));
  EXPECT_TRUE(rejected(parse({"--cluster-listen", "0.0.0.0:7000", "--join", "dns:x"}), "--join"));
  EXPECT_TRUE(rejected(parse({"--cluster-listen", "0.0.0.0:7000", "--cluster-advertise", "0.0.0.0:7000"}),
                       "--cluster-advertise"));
  EXPECT_TRUE(rejected(parse({"--cluster-listen", "0.0.0.0:7000", "--cluster-advertise", "n1:0"}),
                       "--cluster-advertise"));
}

TEST(Config, MissingValueNamesTheFlag) {
  EXPECT_TRUE(rejected(parse({"--threads"}), "--threads"));
}

TEST(Config, BadValueSaysWhereItCameFrom) {
  TempDir dir;
  const std::string file = dir.write("s.yaml", "fsync: sometimes\n");
  const auto from_file = parse({"--config", file});
  EXPECT_TRUE(rejected(from_file, "--fsync"));
  EXPECT_NE(message(from_file).find(file), std::string::npos) << message(from_file);

  const auto from_env = parse({}, {{"STARLING_FSYNC", "sometimes"}});
  EXPECT_TRUE(rejected(from_env, "--fsync"));
  EXPECT_NE(message(from_env).find("STARLING_FSYNC"), std::string::npos) << message(from_env);

  // The flag wins, so the bad file value is never looked at.
  EXPECT_EQ(parse_ok({"--config", file, "--fsync", "never"}).fsync, FsyncMode::never);
}

TEST(Config, UnknownFlagIsNamed) {
  EXPECT_TRUE(rejected(parse({"--bogus"}), "--bogus"));
  EXPECT_TRUE(rejected(parse({"--bogus=1", "--threads", "2"}), "--bogus"));
  EXPECT_TRUE(rejected(parse({"stray"}), "stray"));
}

TEST(Config, BadYamlIsRejected) {
  TempDir dir;
  const auto bad = parse({"--config", dir.write("bad.yaml", "threads: [1, 2\n")});
  EXPECT_TRUE(rejected(bad, "--config"));
  EXPECT_NE(message(bad).find("line"), std::string::npos) << message(bad);

  EXPECT_TRUE(rejected(parse({"--config", dir.write("list.yaml", "- a\n- b\n")}), "--config"));
  EXPECT_TRUE(rejected(parse({"--config", dir.write("nested.yaml", "threads: {a: 1}\n")}), "--config"));
  EXPECT_TRUE(rejected(parse({"--config", (std::filesystem::temp_directory_path() / "no-such.yaml").string()}),
                       "--config"));
}

TEST(Config, UnknownYamlKeyIsRejected) {
  TempDir dir;
  const auto result = parse({"--config", dir.write("s.yaml", "threads: 2\ndatadir: /x\n")});
  EXPECT_TRUE(rejected(result, "--config"));
  EXPECT_NE(message(result).find("datadir"), std::string::npos) << message(result);
  EXPECT_NE(message(result).find("line 2"), std::string::npos) << message(result);
}

TEST(Config, InconsistentSettingsAreRejected) {
  EXPECT_TRUE(rejected(parse({"--mqtts-listen", "0.0.0.0:8883"}), "--mqtts-listen"));
  EXPECT_TRUE(rejected(parse({"--join", "10.0.0.2:7000"}), "--join"));
  EXPECT_TRUE(rejected(parse({"--cluster-advertise", "10.0.0.1:7000"}), "--cluster-advertise"));
  EXPECT_TRUE(rejected(parse({"--mqtt-listen", "off"}), "--mqtt-listen"));
  EXPECT_TRUE(rejected(parse({"--http-listen", "127.0.0.1:1883"}), "--http-listen"));
  // Port 0 never clashes: each listener gets its own free port.
  parse_ok({"--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"});
}

TEST(Config, AnonymousAccessDependsOnPasswordFile) {
  TempDir dir;
  const std::string passwords = dir.write("passwords", "x");
  EXPECT_FALSE(parse_ok({"--password-file", passwords}).anonymous_allowed());
  EXPECT_TRUE(parse_ok({"--password-file", passwords, "--allow-anonymous"}).anonymous_allowed());
  EXPECT_FALSE(parse_ok({"--allow-anonymous=false"}).anonymous_allowed());
}

TEST(Config, BadHostNameAsDefaultNodeIdIsReported) {
  const auto result = parse({}, {}, SystemDefaults{"bad host", 1});
  EXPECT_TRUE(rejected(result, "--node-id"));
}

TEST(Config, VersionAndHelpExitZero) {
  const auto v = parse({"--version"});
  ASSERT_TRUE(std::holds_alternative<ConfigExit>(v));
  EXPECT_EQ(std::get<ConfigExit>(v).exit_code, 0);
  EXPECT_EQ(std::get<ConfigExit>(v).message, "starling " + std::string{version()});
  EXPECT_EQ(version(), "0.1.0");

  const auto h = parse({"--help"});
  ASSERT_TRUE(std::holds_alternative<ConfigExit>(h));
  EXPECT_EQ(std::get<ConfigExit>(h).exit_code, 0);
  EXPECT_NE(std::get<ConfigExit>(h).message.find("--data-dir"), std::string::npos);
  EXPECT_NE(std::get<ConfigExit>(h).message.find("STARLING_"), std::string::npos);
}

TEST(Config, DescribeListsEverySettingAndHidesTheSecret) {
  const Config c = parse_ok({"--cluster-secret", "s3cret", "--http-token", "s3cret"});
  const auto settings = describe(c);
  EXPECT_EQ(settings.size(), 42u);
  for (const auto& [name, value] : settings) {
    EXPECT_EQ(value.find("s3cret"), std::string::npos) << name;
  }
  EXPECT_EQ(settings.front(), (std::pair<std::string, std::string>{"node-id", "test-host"}));
}

}  // namespace
}  // namespace starling::broker
