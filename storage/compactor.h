#pragma once

// Compacts key ranges of one KvStore on a thread of its own, so that the
// space a drained queue erased is given back to the file system without
// holding up writes (DESIGN.md "Storage"). A request for a range that is
// already waiting is not queued twice.
//
// Threads: request() from any thread; the compactions run on the
// compactor's thread, one at a time.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "storage/kv_store.h"
#include "storage/result.h"

namespace starling::storage {

class Compactor {
 public:
  // `failed` hears a compaction's error (on the compactor's thread).
  explicit Compactor(KvStore& store, std::function<void(const Status&)> failed = {});
  // Finishes the compaction under way; those still waiting are dropped.
  ~Compactor();
  Compactor(const Compactor&) = delete;
  Compactor& operator=(const Compactor&) = delete;

  void request(Column column, std::string prefix);
  // Compactions finished (any thread; for tests).
  std::uint64_t done() const;

 private:
  void run();

  KvStore& store_;
  const std::function<void(const Status&)> failed_;
  mutable std::mutex mu_;  // guards everything below
  std::condition_variable wake_;
  std::deque<std::pair<Column, std::string>> waiting_;
  bool stopping_ = false;
  std::uint64_t done_ = 0;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace starling::storage
