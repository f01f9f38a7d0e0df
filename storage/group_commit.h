#pragma once

// Commits write batches from any thread to one KvStore, and tells each
// submitter once its batch is written as durably as --fsync asks: the broker
// sends PUBACK/PUBREC only from that callback (DESIGN.md "Storage").
//
//   Fsync::batch   what is submitted within `interval` of the first pending
//                  batch goes out as one write, synced once: the group commit.
//                  With interval 0 a commit starts at once, and what is
//                  submitted while it syncs goes out together in the next.
//   Fsync::always  every batch is its own synced write.
//   Fsync::never   batches are written as they come, without a sync: they
//                  survive the process dying, not the machine losing power.
//
// A group is one atomic write: if it fails, every batch in it fails and each
// callback hears the error; none of it is on disk.
//
// Threads: submit() from any thread. Callbacks run on the committer's own
// thread, in submission order; they must only hand work over (post), never
// block or submit and wait.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "storage/kv_store.h"
#include "storage/result.h"

namespace starling::storage {

class GroupCommit {
 public:
  using Done = std::function<void(const Status&)>;

  // Hears how long each commit (one write, synced as --fsync says) took, on
  // the committer's thread.
  using OnCommit = std::function<void(std::chrono::nanoseconds)>;
  GroupCommit(KvStore& store, Fsync fsync, std::chrono::milliseconds interval, OnCommit on_commit = {});
  // Commits everything already submitted (and calls back), then stops.
  ~GroupCommit();
  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  void submit(WriteBatch batch, Done done);

  // Writes made, and batches in them (any thread; for metrics and tests).
  std::uint64_t commits() const;
  std::uint64_t batches() const;

 private:
  struct Pending {
    WriteBatch batch;
    Done done;
  };
  void run();
  void commit(std::vector<Pending>& group);

  KvStore& store_;
  const Fsync fsync_;
  const std::chrono::milliseconds interval_;
  const OnCommit on_commit_;

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable wake_;
  std::vector<Pending> pending_;
  std::chrono::steady_clock::time_point first_pending_at_{};
  bool stopping_ = false;
  std::uint64_t commits_ = 0;
  std::uint64_t batches_ = 0;

  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace starling::storage
