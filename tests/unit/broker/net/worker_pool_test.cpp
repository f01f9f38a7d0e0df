// The worker pool, and moving a TCP stream from one worker to another (what a
// Connection does when it follows the worker its messages come from).
#include "broker/net/worker_pool.h"

#include <chrono>
#include <future>
#include <memory>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "broker/net/byte_stream.h"

namespace starling::broker {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

// Runs f on worker `index` and waits for its result.
template <typename F>
auto on_worker(WorkerPool& pool, size_t index, F f) {
  std::packaged_task<decltype(f())()> task(std::move(f));
  auto result = task.get_future();
  asio::post(pool.at(index), [&task] { task(); });
  EXPECT_EQ(result.wait_for(5s), std::future_status::ready);
  return result.get();
}

TEST(WorkerPool, KnowsWhichWorkerIsRunning) {
  WorkerPool pool(2);
  ASSERT_EQ(pool.size(), 2u);
  EXPECT_EQ(pool.current(), -1);  // the test's own thread is no worker
  EXPECT_EQ(on_worker(pool, 0, [&] { return pool.current(); }), 0);
  EXPECT_EQ(on_worker(pool, 1, [&] { return pool.current(); }), 1);
  EXPECT_EQ(pool.index_of(pool.at(1)), 1);
  asio::io_context elsewhere;
  EXPECT_EQ(pool.index_of(elsewhere), -1);
}

TEST(WorkerPool, RoundRobinAndCounts) {
  WorkerPool pool(2);
  auto* first = &pool.next();
  auto* second = &pool.next();
  EXPECT_NE(first, second);
  EXPECT_EQ(&pool.next(), first);
  pool.count_connection(1, 3);
  pool.count_connection(1, -1);
  EXPECT_EQ(pool.connections(0), 0);
  EXPECT_EQ(pool.connections(1), 2);
}

struct Waiter final : ReadableWaiter {
  std::promise<std::pair<boost::system::error_code, int>> done;
  WorkerPool* pool = nullptr;
  void on_readable(boost::system::error_code ec) override { done.set_value({ec, pool->current()}); }
};

TEST(WorkerPool, TcpStreamMovesToAnotherWorkerWithItsBytes) {
  WorkerPool pool(2);
  asio::io_context client_ctx;
  tcp::acceptor acceptor(pool.at(0), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(client_ctx);
  client.connect(acceptor.local_endpoint());
  TcpSocket accepted(pool.at(0).get_executor());
  acceptor.accept(accepted);
  auto stream = make_tcp_stream(std::move(accepted));
  ASSERT_TRUE(stream->can_move());

  // Waiting on worker 0; the release ends the wait.
  auto waiting = std::make_shared<Waiter>();
  waiting->pool = &pool;
  auto released = on_worker(pool, 0, [&] {
    stream->async_wait_readable(waiting);
    return stream->release_worker();
  });
  ASSERT_GE(released.fd, 0);
  auto aborted = waiting->done.get_future();
  ASSERT_EQ(aborted.wait_for(5s), std::future_status::ready);
  auto [ec, worker] = aborted.get();
  EXPECT_EQ(ec, asio::error::operation_aborted);
  EXPECT_EQ(worker, 0);

  // Bytes sent meanwhile are read on worker 1.
  asio::write(client, asio::buffer("hello", 5));
  auto attached = on_worker(pool, 1, [&] { return stream->attach_worker(pool.at(1), released); });
  ASSERT_FALSE(attached) << attached.message();
  auto ready = std::make_shared<Waiter>();
  ready->pool = &pool;
  on_worker(pool, 1, [&] {
    stream->async_wait_readable(ready);
    return 0;
  });
  auto readable = ready->done.get_future();
  ASSERT_EQ(readable.wait_for(5s), std::future_status::ready);
  auto [ec2, worker2] = readable.get();
  EXPECT_FALSE(ec2);
  EXPECT_EQ(worker2, 1);
  auto got = on_worker(pool, 1, [&] {
    char buf[16];
    boost::system::error_code read_ec;
    const size_t n = stream->read_some_now(asio::buffer(buf), read_ec);
    return std::string(buf, n);
  });
  EXPECT_EQ(got, "hello");
  on_worker(pool, 1, [&] {
    stream->close();
    return 0;
  });
}

TEST(WorkerPool, OnlyTcpMoves) {
  struct Other final : ByteStream {
    void async_read_some(asio::mutable_buffer, IoHandler) override {}
    void async_write(std::span<const asio::const_buffer>, IoHandler) override {}
    void close() override {}
    asio::any_io_executor executor() override { return ctx.get_executor(); }
    std::string remote_address() const override { return "?"; }
    std::string_view listener_name() const override { return "ws"; }
    asio::io_context ctx;
  } other;
  EXPECT_FALSE(other.can_move());
  EXPECT_TRUE(other.attach_worker(other.ctx, {}));
}

}  // namespace
}  // namespace starling::broker
