#include "storage/rocksdb_store.h"
#include "tests/support/temp_dir.h"

#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace starling::storage {
namespace {

using starling::test::TempDir;

std::unique_ptr<RocksDbStore> open_ok(const std::filesystem::path& dir) {
  auto store = RocksDbStore::open(dir);
  EXPECT_TRUE(store.ok()) << store.error().message;
  return store.ok() ? std::move(store).value() : nullptr;
}

std::optional<std::string> get(const KvStore& store, Column column, std::string_view key) {
  auto value = store.get(column, key);
  EXPECT_TRUE(value.ok()) << value.error().message;
  return value.ok() ? *value : std::nullopt;
}

std::vector<std::pair<std::string, std::string>> scan(const KvStore& store, Column column,
                                                      std::string_view prefix) {
  std::vector<std::pair<std::string, std::string>> entries;
  Status status = store.scan_prefix(column, prefix, [&](std::string_view k, std::string_view v) {
    entries.emplace_back(k, v);
    return true;
  });
  EXPECT_TRUE(status.ok()) << status.message();
  return entries;
}

TEST(RocksDbStore, PutGetErase) {
  TempDir dir;
  auto store = open_ok(dir.path() / "db");
  ASSERT_NE(store, nullptr);

  EXPECT_EQ(get(*store, Column::sessions, "client-1"), std::nullopt);
  ASSERT_TRUE(store->put(Column::sessions, "client-1", "record").ok());
  EXPECT_EQ(get(*store, Column::sessions, "client-1"), "record");
  // Columns are separate key spaces.
  EXPECT_EQ(get(*store, Column::retained, "client-1"), std::nullopt);

  // Binary keys and values, embedded NUL included.
  const std::string key{"k\0ey", 4};
  const std::string value{"\xff\0\x01", 3};
  ASSERT_TRUE(store->put(Column::queue, key, value).ok());
  EXPECT_EQ(get(*store, Column::queue, key), value);

  ASSERT_TRUE(store->erase(Column::sessions, "client-1").ok());
  EXPECT_EQ(get(*store, Column::sessions, "client-1"), std::nullopt);
  EXPECT_TRUE(store->erase(Column::sessions, "never-there").ok());
}

TEST(RocksDbStore, NewStoreRecordsFormatVersion) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(get(*store, Column::cluster, format_version_key),
            std::to_string(current_format_version));
  EXPECT_EQ(store->directory(), dir.path());
}

TEST(RocksDbStore, BatchAppliesEveryOperation) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->put(Column::inflight, "c/1", "old").ok());

  WriteBatch batch;
  batch.put(Column::sessions, "c", "session");
  batch.put(Column::queue, "c/0001", "m1");
  batch.put(Column::queue, "c/0002", "m2");
  batch.erase(Column::inflight, "c/1");
  batch.put(Column::inbound_qos2, "c/7", "");
  EXPECT_EQ(batch.size(), 5u);
  ASSERT_TRUE(store->write(batch).ok());

  EXPECT_EQ(get(*store, Column::sessions, "c"), "session");
  EXPECT_EQ(get(*store, Column::queue, "c/0001"), "m1");
  EXPECT_EQ(get(*store, Column::queue, "c/0002"), "m2");
  EXPECT_EQ(get(*store, Column::inflight, "c/1"), std::nullopt);
  EXPECT_EQ(get(*store, Column::inbound_qos2, "c/7"), "");
}

TEST(RocksDbStore, RejectedBatchChangesNothing) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_NE(store, nullptr);

  WriteBatch batch;
  batch.put(Column::sessions, "a", "1");
  batch.put(static_cast<Column>(42), "b", "2");  // not a column
  batch.put(Column::sessions, "c", "3");
  const Status status = store->write(batch);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StoreErrc::invalid_argument);
  EXPECT_EQ(get(*store, Column::sessions, "a"), std::nullopt);
  EXPECT_EQ(get(*store, Column::sessions, "c"), std::nullopt);
}

// A scan reads one snapshot, so it sees a concurrent batch whole or not at all.
TEST(RocksDbStore, ScanNeverSeesHalfABatch) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_NE(store, nullptr);

  std::atomic<bool> done{false};
  std::thread writer{[&] {
    for (int i = 0; i < 2000; ++i) {
      WriteBatch batch;
      batch.put(Column::queue, "pair/a", std::to_string(i));
      batch.put(Column::queue, "pair/b", std::to_string(i));
      if (!store->write(batch).ok()) break;
    }
    done = true;
  }};
  int scans = 0;
  int mismatches = 0;
  while (!done || scans == 0) {
    const auto entries = scan(*store, Column::queue, "pair/");
    if (entries.size() == 2 && entries[0].second != entries[1].second) ++mismatches;
    if (entries.size() == 1) ++mismatches;
    ++scans;
  }
  writer.join();
  EXPECT_EQ(mismatches, 0) << "out of " << scans << " scans";
  EXPECT_EQ(get(*store, Column::queue, "pair/a"), "1999");
}

TEST(RocksDbStore, PrefixScanIsOrderedBytewiseAndBounded) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_NE(store, nullptr);

  // Inserted out of order; bytes >= 0x80 must sort after ASCII (unsigned).
  const std::vector<std::string> keys{"c1/\x90", "c1/b", "c1/", "c1/a2", "c1/a10", "c0/z",
                                      "c2/a",    "c1",   "c1/\x01"};
  for (const auto& key : keys) ASSERT_TRUE(store->put(Column::queue, key, "v:" + key).ok());

  const auto entries = scan(*store, Column::queue, "c1/");
  std::vector<std::string> got;
  for (const auto& [key, value] : entries) {
    EXPECT_EQ(value, "v:" + key);
    got.push_back(key);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"c1/", "c1/\x01", "c1/a10", "c1/a2", "c1/b", "c1/\x90"}));

  // The visitor stops the scan by returning false.
  int visited = 0;
  ASSERT_TRUE(store->scan_prefix(Column::queue, "c1/", [&](std::string_view, std::string_view) {
    return ++visited < 2;
  }).ok());
  EXPECT_EQ(visited, 2);

  EXPECT_TRUE(scan(*store, Column::queue, "zz").empty());
  EXPECT_EQ(scan(*store, Column::queue, "").size(), keys.size());
}

TEST(RocksDbStore, ErasePrefixTakesExactlyThePrefixAndCompactionGivesSpaceBack) {
  TempDir dir;
  auto store = open_ok(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(prefix_end("a\xff\xff"), "b");
  EXPECT_EQ(prefix_end("\xff"), "");

  const std::string big(64 * 1024, 'x');
  for (int i = 0; i < 256; ++i) ASSERT_TRUE(store->put(Column::queue, "q/" + std::to_string(1000 + i), big).ok());
  ASSERT_TRUE(store->put(Column::queue, "q", "the prefix itself, shorter").ok());
  ASSERT_TRUE(store->put(Column::queue, "q0", "after the range").ok());
  ASSERT_TRUE(store->put(Column::queue, "p/", "before the range").ok());
  // Out to files first, so the erase has something to compact away.
  ASSERT_TRUE(store->compact_prefix(Column::queue, "").ok());
  auto size_of = [&] {
    std::uintmax_t total = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path()))
      if (e.is_regular_file() && e.path().extension() == ".sst") total += e.file_size();
    return total;
  };
  const auto full = size_of();
  EXPECT_GT(full, 256u * 1024);  // compressed, yet far above what the other keys take

  WriteBatch batch;
  batch.erase_prefix(Column::queue, "q/");
  ASSERT_TRUE(store->write(batch).ok());
  EXPECT_TRUE(scan(*store, Column::queue, "q/").empty());
  EXPECT_EQ(get(*store, Column::queue, "q"), "the prefix itself, shorter");
  EXPECT_EQ(get(*store, Column::queue, "q0"), "after the range");
  EXPECT_EQ(get(*store, Column::queue, "p/"), "before the range");

  ASSERT_TRUE(store->compact_prefix(Column::queue, "q/").ok());
  EXPECT_LT(size_of(), full / 4);
}

TEST(RocksDbStore, ReopenKeepsData) {
  TempDir dir;
  {
    auto store = open_ok(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->put(Column::retained, "a/b", "payload").ok());
    WriteBatch batch;
    batch.put(Column::sessions, "c", "s");
    batch.put(Column::cluster, "members/n1", "alive");
    ASSERT_TRUE(store->write(batch).ok());
  }
  auto store = open_ok(dir.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(get(*store, Column::retained, "a/b"), "payload");
  EXPECT_EQ(get(*store, Column::sessions, "c"), "s");
  EXPECT_EQ(get(*store, Column::cluster, "members/n1"), "alive");
}

TEST(RocksDbStore, SecondOpenOfSameDirectoryIsLocked) {
  TempDir dir;
  auto first = open_ok(dir.path());
  ASSERT_NE(first, nullptr);

  auto second = RocksDbStore::open(dir.path());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, StoreErrc::locked);
  EXPECT_NE(second.error().message.find(dir.path().string()), std::string::npos)
      << second.error().message;

  // Once the first is closed, the directory opens again.
  first.reset();
  EXPECT_NE(open_ok(dir.path()), nullptr);
}

TEST(RocksDbStore, UnknownFormatVersionIsRefused) {
  TempDir dir;
  {
    auto store = open_ok(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->put(Column::cluster, format_version_key, "999").ok());
  }
  auto refused = RocksDbStore::open(dir.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, StoreErrc::bad_format_version);
  EXPECT_NE(refused.error().message.find("999"), std::string::npos) << refused.error().message;
}

TEST(RocksDbStore, GarbledFormatVersionIsRefused) {
  TempDir dir;
  {
    auto store = open_ok(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->put(Column::cluster, format_version_key, "1x").ok());
  }
  auto refused = RocksDbStore::open(dir.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, StoreErrc::bad_format_version);
}

TEST(RocksDbStore, DataWithoutFormatVersionIsRefused) {
  TempDir dir;
  {
    auto store = open_ok(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->put(Column::sessions, "c", "s").ok());
    ASSERT_TRUE(store->erase(Column::cluster, format_version_key).ok());
  }
  auto refused = RocksDbStore::open(dir.path());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, StoreErrc::bad_format_version);
}

TEST(RocksDbStore, UncreatableDirectoryIsAnIoError) {
  TempDir dir;
  // A regular file where a parent directory should be: fails even for root,
  // unlike permission bits.
  const auto file = dir.path() / "not-a-dir";
  std::ofstream{file} << "x";
  auto refused = RocksDbStore::open(file / "db");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, StoreErrc::io_error);
  EXPECT_NE(refused.error().message.find("not-a-dir"), std::string::npos) << refused.error().message;
}

TEST(RocksDbStore, ErrorCodesHaveACategory) {
  const std::error_code code = StoreErrc::locked;
  EXPECT_EQ(code.category().name(), std::string{"starling.storage"});
  EXPECT_FALSE(code.message().empty());
  EXPECT_EQ(column_name(Column::inbound_qos2), "inbound_qos2");
}

}  // namespace
}  // namespace starling::storage
