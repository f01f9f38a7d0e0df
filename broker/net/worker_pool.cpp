#include "broker/net/worker_pool.h"

namespace starling::broker {

WorkerPool::WorkerPool(unsigned threads) {
  if (threads == 0) threads = 1;
  for (unsigned i = 0; i < threads; ++i) {
    workers_.push_back(std::make_unique<Worker>());
    guards_.push_back(boost::asio::make_work_guard(workers_.back()->context));
  }
  for (auto& w : workers_) threads_.emplace_back([c = &w->context] { c->run(); });
}

WorkerPool::~WorkerPool() { stop(); }

boost::asio::io_context& WorkerPool::next() {
  auto& ctx = workers_[next_]->context;
  next_ = (next_ + 1) % workers_.size();
  return ctx;
}

int WorkerPool::index_of(const boost::asio::io_context& worker) const {
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (&workers_[i]->context == &worker) return static_cast<int>(i);
  }
  return -1;
}

int WorkerPool::current() const {
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i]->context.get_executor().running_in_this_thread()) return static_cast<int>(i);
  }
  return -1;
}

void WorkerPool::stop() {
  guards_.clear();
  for (auto& w : workers_) w->context.stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

}  // namespace starling::broker
