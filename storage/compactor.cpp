#include "storage/compactor.h"

#include <algorithm>

namespace starling::storage {

Compactor::Compactor(KvStore& store, std::function<void(const Status&)> failed)
    : store_(store), failed_(std::move(failed)), thread_([this] { run(); }) {}

Compactor::~Compactor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Compactor::request(Column column, std::string prefix) {
  {
    std::lock_guard lock(mu_);
    auto wanted = std::pair{column, std::move(prefix)};
    if (std::find(waiting_.begin(), waiting_.end(), wanted) != waiting_.end()) return;
    waiting_.push_back(std::move(wanted));
  }
  wake_.notify_one();
}

std::uint64_t Compactor::done() const {
  std::lock_guard lock(mu_);
  return done_;
}

void Compactor::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !waiting_.empty(); });
    if (stopping_) return;
    auto [column, prefix] = std::move(waiting_.front());
    waiting_.pop_front();
    lock.unlock();
    const Status status = store_.compact_prefix(column, prefix);
    if (!status && failed_) failed_(status);
    lock.lock();
    ++done_;
  }
}

}  // namespace starling::storage
