// The network worker threads: one io_context each. A connection is placed on
// one worker when accepted and stays there, so its path takes no locks.
#pragma once

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
  void stop();

 private:
  using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<Guard> guards_;
  std::vector<std::thread> threads_;
  size_t next_ = 0;
};

}  // namespace starling::broker
