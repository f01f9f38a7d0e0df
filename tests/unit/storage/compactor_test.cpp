// The background compactor: requests run on its thread, a range already
// waiting is not queued twice, and the space of erased keys comes back.
#include "storage/compactor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "storage/rocksdb_store.h"
#include "tests/support/temp_dir.h"

namespace starling::storage {
namespace {

std::uintmax_t sst_bytes(const std::filesystem::path& dir) {
  std::uintmax_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".sst") total += e.file_size();
  return total;
}

bool wait_for(const Compactor& c, std::uint64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (c.done() < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(Compactor, GivesBackTheSpaceOfAnErasedRangeAndMergesRepeatedRequests) {
  test::TempDir dir;
  auto store = std::move(RocksDbStore::open(dir.path()).value());
  const std::string value(32 * 1024, 'v');
  for (int i = 0; i < 512; ++i) ASSERT_TRUE(store->put(Column::queue, "c/" + std::to_string(100000 + i), value));
  int failures = 0;
  Compactor compactor(*store, [&](const Status&) { ++failures; });
  compactor.request(Column::queue, "");  // everything out to files first
  ASSERT_TRUE(wait_for(compactor, 1));
  const auto full = sst_bytes(dir.path());
  ASSERT_GT(full, 0u);

  WriteBatch erase;
  erase.erase_prefix(Column::queue, "c/");
  ASSERT_TRUE(store->write(erase));
  // Three requests for one range while none runs: at most two compactions
  // (one may have started before the others came).
  for (int i = 0; i < 3; ++i) compactor.request(Column::queue, "c/");
  ASSERT_TRUE(wait_for(compactor, 2));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LE(compactor.done(), 3u);
  EXPECT_LT(sst_bytes(dir.path()), full / 4);
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace starling::storage
