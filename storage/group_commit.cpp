#include "storage/group_commit.h"

#include <utility>

namespace starling::storage {

GroupCommit::GroupCommit(KvStore& store, Fsync fsync, std::chrono::milliseconds interval, OnCommit on_commit)
    : store_(store),
      fsync_(fsync),
      interval_(interval),
      on_commit_(std::move(on_commit)),
      thread_([this] { run(); }) {}

GroupCommit::~GroupCommit() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void GroupCommit::submit(WriteBatch batch, Done done) {
  {
    std::lock_guard lock(mu_);
    if (pending_.empty()) first_pending_at_ = std::chrono::steady_clock::now();
    pending_.push_back({std::move(batch), std::move(done)});
  }
  wake_.notify_one();
}

std::uint64_t GroupCommit::commits() const {
  std::lock_guard lock(mu_);
  return commits_;
}

std::uint64_t GroupCommit::batches() const {
  std::lock_guard lock(mu_);
  return batches_;
}

void GroupCommit::run() {
  std::vector<Pending> group;
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) return;  // stopping, and nothing left
    if (fsync_ == Fsync::batch) {
      // Gather what comes within the interval; stopping cuts it short.
      wake_.wait_until(lock, first_pending_at_ + interval_, [&] { return stopping_; });
    }
    group.swap(pending_);
    lock.unlock();
    commit(group);
    group.clear();
    lock.lock();
  }
}

void GroupCommit::commit(std::vector<Pending>& group) {
  const auto count = [this](std::uint64_t writes, std::uint64_t batches) {
    std::lock_guard lock(mu_);
    commits_ += writes;
    batches_ += batches;
  };
  if (fsync_ == Fsync::always) {
    for (Pending& p : group) {
      const WriteBatch* one = &p.batch;
      const auto started = std::chrono::steady_clock::now();
      const Status status = store_.write_all({&one, 1}, /*sync=*/true);
      if (on_commit_) on_commit_(std::chrono::steady_clock::now() - started);
      count(1, 1);
      if (p.done) p.done(status);
    }
    return;
  }
  std::vector<const WriteBatch*> batches;
  batches.reserve(group.size());
  for (const Pending& p : group) batches.push_back(&p.batch);
  const auto started = std::chrono::steady_clock::now();
  const Status status = store_.write_all(batches, /*sync=*/fsync_ == Fsync::batch);
  if (on_commit_) on_commit_(std::chrono::steady_clock::now() - started);
  count(1, group.size());
  for (Pending& p : group) {
    if (p.done) p.done(status);
  }
}

}  // namespace starling::storage
