#include "broker/server.h"

#include <cstring>
#include <functional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "broker/broker_context.h"
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
  Parts(const Config& c, spdlog::logger& l)
      : config(c),
        log(l),
        router(forwarder),
        sessions(router, retained, QueueLimits::with_hard_limits(c.max_queued, c.max_queued_bytes)),
        context{limits_of(c), sessions, router, retained, stats, log, &workers},
        workers(c.threads),
        signals(main, SIGINT, SIGTERM),
        sweep_timer(main),
        sys_timer(main) {}

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
  // The node's RocksDB and its committer, made by start(); closed after
  // everything else, the committer first.
  std::unique_ptr<storage::RocksDbStore> store;
  std::unique_ptr<storage::GroupCommit> commits;
  std::unique_ptr<storage::Compactor> compactor;
  Stats stats;
  LocalOnly forwarder;
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
  Clock::time_point started = Clock::now();
  uint64_t sweeps = 0;

  void accept(tcp::acceptor& acceptor, bool websocket) {
    acceptor.async_accept(workers.next(), [this, &acceptor, websocket](boost::system::error_code ec, TcpSocket s) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) start_connection(std::move(s), websocket);
      accept(acceptor, websocket);
    });
  }

  void start_connection(TcpSocket socket, bool websocket) {
    auto executor = socket.get_executor();
    if (websocket) {
      asio::post(executor, [this, &worker = executor.context(), s = tcp::socket(std::move(socket))]() mutable {
        async_accept_websocket(std::move(s), std::chrono::seconds(10),
                               [this, &worker](boost::system::error_code ec, std::unique_ptr<ByteStream> stream) {
                                 if (ec || !stream) return;
                                 std::make_shared<Connection>(context, std::move(stream), worker)->start();
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
        stats.messages_dropped.fetch_add(sessions.drop_expired_messages(now), std::memory_order_relaxed);
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

Server::Server(const Config& config, spdlog::logger& log) : parts_(std::make_unique<Parts>(config, log)) {}

Server::~Server() {
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
  p.commits = std::make_unique<storage::GroupCommit>(*p.store, p.config.fsync,
                                                     std::chrono::milliseconds(p.config.fsync_interval_ms));
  p.context.commits = p.commits.get();
  p.compactor = std::make_unique<storage::Compactor>(
      *p.store, [&log = p.log](const storage::Status& s) { log.warn("compaction failed: {}", s.message()); });
  p.context.compactor = p.compactor.get();
  // Before the sessions come back: the wills of those expired meanwhile are
  // published, and stored where they are retained or queued.
  p.sessions.set_store(p.commits.get());
  auto sessions = p.sessions.restore(*p.store, ClockPair{});
  if (!sessions) return StartError{sessions.error().message, 2};
  p.log.info(
      "data directory {} opened: {} retained messages ({} expired, dropped); persistent sessions: {} restored "
      "with {} queued messages, {} expired, {} stale or expired records dropped",
      p.config.data_dir.string(), retained->loaded, retained->expired, sessions->sessions, sessions->queued,
      sessions->expired, sessions->dropped);
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
    p.acceptors.push_back(std::move(*bound.acceptor));  // reserved: handlers hold references
    p.accept(p.acceptors.back(), w.websocket);
  }
  if (p.config.mqtts_listen) p.log.warn("--mqtts-listen is not implemented yet; TLS listener not started");
  if (p.config.http_listen) p.log.info("the HTTP listener comes with issue 6; --http-listen not bound yet");
  return std::nullopt;
}

int Server::run() {
  Parts& p = *parts_;
  p.signals.async_wait([&p](boost::system::error_code ec, int signal) {
    if (ec) return;
    p.log.info("signal {}: stopping", signal);
    for (auto& a : p.acceptors) {
      boost::system::error_code ignored;
      a.close(ignored);
    }
    p.sweep_timer.cancel();
    p.sys_timer.cancel();
    // main.run() returns once the aborted accepts and timers have completed.
  });
  p.sweep();
  p.publish_sys();
  p.main.run();
  p.workers.stop();
  p.close_store();
  p.log.info("stopped");
  return 0;
}

}  // namespace starling::broker
