#pragma once

// KvStore on an embedded RocksDB, one column family per storage::Column.
// RocksDB's own types stay in rocksdb_store.cpp (pimpl), so including this
// header does not pull RocksDB into the broker.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "storage/kv_store.h"
#include "storage/result.h"

namespace starling::storage {

// Version of the on-disk layout (column families, key and record encodings).
// Bump it with every incompatible change and give the old one a reader or a
// migration; a build refuses any version it does not know.
inline constexpr std::uint32_t current_format_version = 1;
// Where the version lives, in Column::cluster, as decimal text.
inline constexpr std::string_view format_version_key = "meta/format_version";

class RocksDbStore final : public KvStore {
 public:
  struct Options {
    // fsync the write-ahead log on every write (--fsync always). Otherwise a
    // write survives a process crash but not a power loss until the next sync.
    bool sync_writes = false;
    // RocksDB's own warnings and errors, one line each. RocksDB writes no LOG
    // file into the data directory, so a directory that fails to open is
    // left exactly as it was.
    std::function<void(std::string_view)> warn;
  };

  // Opens the database in `dir`, creating the directory and the database if
  // missing. Fails with StoreErrc::io_error (cannot create or write),
  // StoreErrc::locked (already open), StoreErrc::corruption (damaged, or
  // RocksDB files without the CURRENT file that names them),
  // StoreErrc::bad_format_version. Nothing is repaired.
  static Result<std::unique_ptr<RocksDbStore>> open(const std::filesystem::path& dir,
                                                    const Options& options);
  static Result<std::unique_ptr<RocksDbStore>> open(const std::filesystem::path& dir) {
    return open(dir, Options{});
  }

  struct Impl;
  // Private key: only open() constructs (through std::make_unique).
  class Key {
    friend class RocksDbStore;
    Key() = default;
  };
  RocksDbStore(Key, std::unique_ptr<Impl> impl);
  ~RocksDbStore() override;
  RocksDbStore(const RocksDbStore&) = delete;
  RocksDbStore& operator=(const RocksDbStore&) = delete;

  Result<std::optional<std::string>> get(Column column, std::string_view key) const override;
  Status put(Column column, std::string_view key, std::string_view value) override;
  Status erase(Column column, std::string_view key) override;
  Status write(const WriteBatch& batch) override;
  Status write_all(std::span<const WriteBatch* const> batches, bool sync) override;
  Status scan_prefix(Column column, std::string_view prefix,
                     const ScanVisitor& visit) const override;
  Status compact_prefix(Column column, std::string_view prefix) override;
  // Syncs the write-ahead log to disk: what was written without a sync
  // (--fsync never) then survives a power loss too. For a clean shutdown.
  Status sync_log();

  const std::filesystem::path& directory() const noexcept;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace starling::storage
