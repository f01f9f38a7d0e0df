#include "storage/group_commit.h"

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "storage/rocksdb_store.h"
#include "tests/support/temp_dir.h"

namespace starling::storage {
namespace {

using namespace std::chrono_literals;
using starling::test::TempDir;

std::unique_ptr<RocksDbStore> open_store(const TempDir& dir) {
  auto store = RocksDbStore::open(dir.path() / "db");
  EXPECT_TRUE(store.ok()) << store.error().message;
  return std::move(store).value();
}

WriteBatch put(std::string key, std::string value) {
  WriteBatch b;
  b.put(Column::queue, std::move(key), std::move(value));
  return b;
}

// Every callback's status, in the order they came.
struct Outcomes {
  std::mutex mu;
  std::vector<std::pair<int, bool>> seen;  // (submission index, ok)
  std::promise<void> all;
  size_t expected = 0;
  GroupCommit::Done done(int index) {
    return [this, index](const Status& s) {
      std::lock_guard lock(mu);
      seen.emplace_back(index, s.ok());
      if (seen.size() == expected) all.set_value();
    };
  }
  void wait() { ASSERT_EQ(all.get_future().wait_for(10s), std::future_status::ready); }
};

TEST(GroupCommit, CallsBackOnceTheWriteIsInTheStore) {
  TempDir dir;
  auto store = open_store(dir);
  GroupCommit commit(*store, Fsync::batch, 2ms);
  std::promise<std::optional<std::string>> seen;
  commit.submit(put("k", "v"), [&](const Status& s) {
    EXPECT_TRUE(s.ok()) << s.message();
    auto value = store->get(Column::queue, "k");
    seen.set_value(value.ok() ? *value : std::nullopt);
  });
  auto f = seen.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(f.get(), "v");
}

TEST(GroupCommit, BatchModeGroupsWhatComesWithinTheInterval) {
  TempDir dir;
  auto store = open_store(dir);
  GroupCommit commit(*store, Fsync::batch, 200ms);
  Outcomes out;
  out.expected = 400;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const int index = t * 100 + i;
        commit.submit(put("k" + std::to_string(index), "v"), out.done(index));
      }
    });
  }
  for (auto& t : threads) t.join();
  out.wait();
  EXPECT_EQ(commit.batches(), 400u);
  // Submitted within far less than 200 ms: a few writes, not 400.
  EXPECT_LE(commit.commits(), 4u);
  for (auto& [index, ok] : out.seen) EXPECT_TRUE(ok) << index;
}

TEST(GroupCommit, CallbacksComeInSubmissionOrder) {
  TempDir dir;
  auto store = open_store(dir);
  for (Fsync mode : {Fsync::batch, Fsync::always, Fsync::never}) {
    GroupCommit commit(*store, mode, 1ms);
    Outcomes out;
    out.expected = 200;
    for (int i = 0; i < 200; ++i) {
      commit.submit(put("same", std::to_string(i)), out.done(i));
      if (i % 50 == 0) std::this_thread::sleep_for(3ms);  // several groups
    }
    out.wait();
    for (int i = 0; i < 200; ++i) EXPECT_EQ(out.seen[i].first, i);
    EXPECT_EQ(*store->get(Column::queue, "same").value(), "199");  // the last write won
  }
}

TEST(GroupCommit, AlwaysWritesEachBatchAlone) {
  TempDir dir;
  auto store = open_store(dir);
  GroupCommit commit(*store, Fsync::always, 100ms);
  Outcomes out;
  out.expected = 20;
  for (int i = 0; i < 20; ++i) commit.submit(put("k" + std::to_string(i), "v"), out.done(i));
  out.wait();
  EXPECT_EQ(commit.commits(), 20u);
}

TEST(GroupCommit, StoppingCommitsWhatWasSubmitted) {
  TempDir dir;
  std::atomic<int> called{0};
  {
    auto store = open_store(dir);
    auto commit = std::make_unique<GroupCommit>(*store, Fsync::batch, 30s);  // would wait long
    for (int i = 0; i < 10; ++i) {
      commit->submit(put("k" + std::to_string(i), "v"), [&](const Status& s) {
        EXPECT_TRUE(s.ok());
        ++called;
      });
    }
    const auto started = std::chrono::steady_clock::now();
    commit.reset();  // cuts the interval short
    EXPECT_LT(std::chrono::steady_clock::now() - started, 10s);
    EXPECT_EQ(called.load(), 10);
  }
  auto reopened = open_store(dir);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(reopened->get(Column::queue, "k" + std::to_string(i)).value().has_value()) << i;
  }
}

TEST(GroupCommit, AFailedGroupFailsEveryBatchInIt) {
  TempDir dir;
  auto store = open_store(dir);
  GroupCommit commit(*store, Fsync::batch, 100ms);
  Outcomes out;
  out.expected = 2;
  WriteBatch bad;
  bad.put(static_cast<Column>(200), "k", "v");  // no such column: the write is refused
  commit.submit(put("good", "v"), out.done(0));
  commit.submit(std::move(bad), out.done(1));
  out.wait();
  EXPECT_FALSE(out.seen[0].second);
  EXPECT_FALSE(out.seen[1].second);
  EXPECT_FALSE(store->get(Column::queue, "good").value().has_value());  // all or nothing
}

}  // namespace
}  // namespace starling::storage
