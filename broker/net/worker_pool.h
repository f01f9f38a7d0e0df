// The network worker threads: one io_context each. A connection is placed on
// one worker when accepted; its path takes no locks because only that worker
// touches it. It may move once to the worker its messages come from (see
// Connection), and the pool keeps the count of connections per worker that
// such a move must not unbalance.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace starling::broker {

class WorkerPool {
 public:
  explicit WorkerPool(unsigned threads);
  ~WorkerPool();  // stops and joins

  // The next worker's io_context, round robin. Called from the accepting thread.
  boost::asio::io_context& next();
  size_t size() const { return workers_.size(); }
  boost::asio::io_context& at(size_t index) { return workers_[index]->context; }
  // The index of the worker that runs `worker`, or of the one whose thread
  // calls current(); -1 when none does.
  int index_of(const boost::asio::io_context& worker) const;
  int current() const;
  // Connections counted on each worker (any thread).
  int connections(size_t index) const { return workers_[index]->connections.load(std::memory_order_relaxed); }
  void count_connection(size_t index, int delta) {
    workers_[index]->connections.fetch_add(delta, std::memory_order_relaxed);
  }
  void stop();

 private:
  using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  struct Worker {
    boost::asio::io_context context{1};  // concurrency hint 1: run by exactly one thread
    std::atomic<int> connections{0};
  };
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<Guard> guards_;
  std::vector<std::thread> threads_;
  size_t next_ = 0;
};

}  // namespace starling::broker
