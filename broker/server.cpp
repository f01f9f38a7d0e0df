#include "broker/server.h"

#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "broker/broker_context.h"
#include "broker/http/http_server.h"
#include "broker/http/node_api.h"
#include "broker/metrics.h"
#include "broker/net/connection.h"
#include "broker/net/listen_address.h"
#include "broker/net/websocket_stream.h"
#include "broker/net/worker_pool.h"
#include "broker/routing/retained_persistence.h"
#include "broker/sys_topics.h"
#include "storage/compactor.h"
#include "storage/group_commit.h"
#include "storage/rocksdb_store.h"

namespace starling::broker {

namespace asio = boost::asio;
using asio::ip::tcp;

struct Server::Parts {
  Parts(const Config& c, spdlog::logger& l, ClusterLink* cl)
      : config(c),
        log(l),
        single_node(c.node_id),
        cluster(cl ? *cl : single_node),
        stats(c.threads),
        router(cluster.forwarder()),
        sessions(router, retained, QueueLimits::with_hard_limits(c.max_queued, c.max_queued_bytes)),
        context{limits_of(c), sessions, router, retained, stats, log, &workers},
        workers(c.threads),
        signals(main, SIGINT, SIGTERM),
        sweep_timer(main),
        sys_timer(main),
        drain_timer(main),
        metrics(stats, c.node_id, version()) {}

  static Limits limits_of(const Config& c) {
    Limits l;
    l.max_packet_size = c.max_packet_size;
    l.max_keepalive = c.max_keepalive;
    l.receive_maximum = c.receive_maximum;
    l.max_inflight = c.max_inflight;
    l.topic_alias_maximum = c.topic_alias_maximum;
    l.max_connections = c.max_connections;
    l.max_topic_levels = c.max_topic_levels;
    l.max_topic_length = c.max_topic_length;
    return l;
  }

  const Config& config;
  spdlog::logger& log;
  SingleNode single_node;  // used when no cluster is given
  ClusterLink& cluster;
  // The node's RocksDB and its committer, made by start(); closed after
  // everything else, the committer first.
  std::unique_ptr<storage::RocksDbStore> store;
  std::unique_ptr<storage::GroupCommit> commits;
  std::unique_ptr<storage::Compactor> compactor;
  Stats stats;
  Router router;
  RetainedStore retained;
  SessionRegistry sessions;
  BrokerContext context;
  // Workers before main: main is destroyed first, and a pending accept holds a
  // socket that belongs to a worker's io_context.
  WorkerPool workers;
  asio::io_context main{1};  // accepting, timers, signals
  std::vector<tcp::acceptor> acceptors;
  asio::signal_set signals;
  asio::steady_timer sweep_timer;
  asio::steady_timer sys_timer;
  asio::steady_timer drain_timer;
  Clock::time_point started = Clock::now();
  std::chrono::system_clock::time_point started_wall = std::chrono::system_clock::now();
  uint64_t sweeps = 0;
  AcceptRetry accept_retry;  // main thread only
  Metrics metrics;
  std::vector<BoundListener> bound;
  std::atomic<bool> accepting{false};  // MQTT listeners open, not draining
  std::atomic<bool> draining{false};
  Clock::time_point stop_by;  // the shutdown deadline, once a signal came
  std::unique_ptr<NodeApi> api;
  std::unique_ptr<HttpServer> http;  // last: its thread reads everything above

  // The names of the event loops that did not run a posted no-op in time.
  std::vector<std::string> unresponsive_loops(std::chrono::milliseconds timeout) {
    std::vector<std::pair<std::string, std::future<void>>> pings;
    const auto ping = [&pings](std::string name, asio::io_context& loop) {
      auto done = std::make_shared<std::promise<void>>();
      pings.emplace_back(std::move(name), done->get_future());
      asio::post(loop, [done] { done->set_value(); });
    };
    ping("main", main);
    for (size_t i = 0; i < workers.size(); ++i) ping("worker " + std::to_string(i), workers.at(i));
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<std::string> stuck;
    for (auto& [name, answer] : pings) {
      if (answer.wait_until(deadline) != std::future_status::ready) stuck.push_back(name);
    }
    return stuck;
  }

  // SIGTERM/SIGINT: not ready at once; after --drain-delay no more accepting
  // and every client told to go (MQTT 5: DISCONNECT 0x8B); then, once they
  // have gone or --shutdown-timeout is near, main.run() returns and run()
  // flushes the store.
  void drain(int signal) {
    stop_by = Clock::now() + std::chrono::seconds(config.shutdown_timeout);
    draining = true;
    log.info("signal {}: draining; /readyz reports 503{}; exit within {} s (a second signal exits at once)", signal,
             config.drain_delay > 0 ? fmt::format(", listeners close in {} s", config.drain_delay) : std::string{},
             config.shutdown_timeout);
    sweep_timer.cancel();
    sys_timer.cancel();
    drain_timer.expires_after(std::chrono::seconds(config.drain_delay));
    drain_timer.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      for (auto& a : acceptors) {
        boost::system::error_code ignored;
        a.close(ignored);
      }
      accepting = false;
      const size_t told = sessions.kick_all(mqtt::ReasonCode::kServerShuttingDown);
      log.info("listeners closed; {} connected clients told the server is shutting down", told);
      wait_for_clients();
    });
  }

  // Until every client has gone and every closed connection has written its
  // last bytes (a DISCONNECT); connections that never sent CONNECT are not
  // waited for, they end with the workers.
  void wait_for_clients() {
    // A second's margin before the deadline for flushing the store.
    const bool late = Clock::now() + std::chrono::seconds(1) >= stop_by;
    const auto clients = stats.clients_connected.load(std::memory_order_relaxed);
    const auto alive = stats.connections_alive.load(std::memory_order_relaxed);
    const auto open = stats.connections.load(std::memory_order_relaxed);
    const auto closing = alive > open ? alive - open : 0;
    // Sessions its clients took to other nodes are released there (what they
    // queued here meanwhile goes with the release) before the node leaves.
    const auto held = sessions.held_count(Clock::now());
    if ((clients == 0 && closing == 0 && held == 0) || late) {
      if (clients != 0) log.warn("shutdown timeout: {} clients still connected are cut off now", clients);
      main.stop();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait([this](boost::system::error_code ec) {
      if (!ec) wait_for_clients();
    });
  }

  void accept(tcp::acceptor& acceptor, bool websocket) {
    acceptor.async_accept(workers.next(), [this, &acceptor, websocket](boost::system::error_code ec, TcpSocket s) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) {
        start_connection(std::move(s), websocket);
        return accept(acceptor, websocket);
      }
      accept_retry.after_failure(main.get_executor(), log, websocket ? "ws" : "mqtt", ec, [this, &acceptor, websocket] {
        if (acceptor.is_open()) accept(acceptor, websocket);
      });
    });
  }

  void start_connection(TcpSocket socket, bool websocket) {
    auto executor = socket.get_executor();
    if (websocket) {
      asio::post(executor, [this, &worker = executor.context(), s = tcp::socket(std::move(socket))]() mutable {
        async_accept_websocket(std::move(s), std::chrono::seconds(10),
                               [this, &worker](boost::system::error_code ec, std::unique_ptr<ByteStream> stream) {
                                 if (ec || !stream) return;
                                 std::make_shared<Connection>(context, std::move(stream), worker, ListenerKind::kWebSocket)->start();
                               });
      });
      return;
    }
    auto connection = std::make_shared<Connection>(context, make_tcp_stream(std::move(socket)), executor.context());
    asio::post(executor, [connection] { connection->start(); });
  }

  // Commits what is pending and stops committing; the workers its callbacks
  // post to must still exist (stopped: those posts are dropped with them).
  void close_store() {
    context.commits = nullptr;
    context.compactor = nullptr;
    sessions.set_store(nullptr);
    commits.reset();
    compactor.reset();
  }

  void sweep() {
    sweep_timer.expires_after(std::chrono::milliseconds(250));
    sweep_timer.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      const auto now = Clock::now();
      sessions.sweep(now);
      // Expired messages are never sent; once a minute they are freed: the
      // retained ones, and those queued for offline sessions.
      if (++sweeps % 240 == 0) {
        retained.remove_expired(now);
        stats.count_drop(DropReason::kExpired, sessions.drop_expired_messages(now));
      }
      sweep();
    });
  }

  void publish_sys() {
    if (config.sys_interval == 0) return;
    sys_timer.expires_after(std::chrono::seconds(config.sys_interval));
    sys_timer.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      publish_sys_topics(SysSnapshot{started, stats, sessions.size(), router.subscription_count(), retained.size()},
                         sessions, Clock::now());
      publish_sys();
    });
  }
};

Server::Server(const Config& config, spdlog::logger& log, ClusterLink* cluster)
    : parts_(std::make_unique<Parts>(config, log, cluster)) {}

Server::~Server() {
  // No more calls from other nodes into the parts (a no-op after run()).
  parts_->cluster.leave();
  parts_->http.reset();
  parts_->workers.stop();
  parts_->close_store();
}

std::optional<Server::StartError> Server::start() {
  Parts& p = *parts_;
  storage::RocksDbStore::Options options;
  options.sync_writes = p.config.fsync == FsyncMode::always;
  options.warn = [&log = p.log](std::string_view line) { log.warn("rocksdb: {}", line); };
  auto store = storage::RocksDbStore::open(p.config.data_dir, options);
  if (!store) return StartError{store.error().message, 2};
  p.store = std::move(*store);
  auto retained = load_retained(*p.store, p.retained, ClockPair{});
  if (!retained) return StartError{retained.error().message, 2};
  p.commits = std::make_unique<storage::GroupCommit>(
      *p.store, p.config.fsync, std::chrono::milliseconds(p.config.fsync_interval_ms),
      [&stats = p.stats](std::chrono::nanoseconds took) { stats.commit_latency.observe(took); });
  p.context.commits = p.commits.get();
  p.compactor = std::make_unique<storage::Compactor>(
      *p.store, [&log = p.log](const storage::Status& s) { log.warn("compaction failed: {}", s.message()); });
  p.context.compactor = p.compactor.get();
  p.context.cluster = &p.cluster;
  // Before the sessions come back: the wills of those expired meanwhile are
  // published, and stored where they are retained or queued.
  p.sessions.set_store(p.commits.get());
  auto sessions = p.sessions.restore(*p.store, ClockPair{});
  if (!sessions) return StartError{sessions.error().message, 2};
  p.log.info(
      "data directory {} opened: {} retained messages ({} expired, dropped); persistent sessions: {} restored "
      "with {} queued messages, {} expired, {} stale or expired records dropped; {} copies of other nodes' sessions",
      p.config.data_dir.string(), retained->loaded, retained->expired, sessions->sessions, sessions->queued,
      sessions->expired, sessions->dropped, sessions->copies);
  // Messages from other nodes are delivered from now on.
  p.cluster.serve(p.sessions);
  struct Wanted {
    const std::optional<HostPort>& address;
    std::string_view name;
    bool websocket;
  };
  p.acceptors.reserve(2);
  for (const Wanted& w : {Wanted{p.config.mqtt_listen, "mqtt", false}, Wanted{p.config.ws_listen, "ws", true}}) {
    if (!w.address) continue;
    auto bound = listen_on(p.main.get_executor(), *w.address);
    if (!bound.ok()) return StartError{bound.error, 1};
    // Tests and scripts read the port from this line.
    p.log.info("listener {} bound to {}:{}", w.name, bound.endpoint.address().to_string(), bound.port());
    p.bound.push_back({std::string{w.name}, bound.endpoint.address().to_string(), bound.port()});
    p.acceptors.push_back(std::move(*bound.acceptor));  // reserved: handlers hold references
    p.accept(p.acceptors.back(), w.websocket);
  }
  if (p.config.mqtts_listen) p.log.warn("--mqtts-listen is not implemented yet; TLS listener not started");
  p.accepting = true;
  if (p.config.http_listen) {
    // The view is complete before the HTTP thread starts: nothing in it changes after.
    NodeView view{p.config, p.metrics, p.stats, p.sessions, p.router, p.retained, p.cluster, p.started, p.started_wall,
                  p.bound, p.accepting, p.draining,
                  [&p](std::chrono::milliseconds timeout) { return p.unresponsive_loops(timeout); }};
    auto started = HttpServer::bind(*p.config.http_listen, p.log);
    if (!started.server) return StartError{started.error, 1};
    p.http = std::move(started.server);
    const auto& http = p.http->bound();
    view.listeners.push_back({"http", http.endpoint.address().to_string(), http.port()});
    p.api = std::make_unique<NodeApi>(std::move(view));
    p.http->serve([&api = *p.api](const HttpRequest& r) { return api.handle(r); });
    p.log.info("listener http bound to {}:{}", http.endpoint.address().to_string(), http.port());
  }
  p.log.info("node {} ready: starling {}, data directory {}", p.config.node_id, version(), p.config.data_dir.string());
  return std::nullopt;
}

int Server::run() {
  Parts& p = *parts_;
  p.signals.async_wait([&p](boost::system::error_code ec, int signal) {
    if (ec) return;
    p.drain(signal);
    p.signals.async_wait([&p](boost::system::error_code ec, int signal) {
      if (ec) return;
      p.log.warn("signal {} again: exiting at once", signal);
      p.log.flush();
      std::_Exit(1);
    });
  });
  p.sweep();
  p.publish_sys();
  p.main.run();
  // Clients are gone: the others may forget this node's routes now.
  p.cluster.leave();
  p.http.reset();  // no request reads the node from here on
  p.workers.stop();
  p.close_store();
  // Not after a failed write: the log is in error then, and Debian's RocksDB
  // asserts on a sync of a log in error (the process would abort, not exit 0).
  if (p.store && !p.stats.store_failing.load()) {
    if (auto synced = p.store->sync_log(); !synced) p.log.warn("store: {}", synced.message());
  }
  p.log.info("stopped");
  return 0;
}

}  // namespace starling::broker
