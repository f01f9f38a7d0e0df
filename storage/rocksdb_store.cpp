#include "storage/rocksdb_store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdarg>
#include <cstdio>
#include <system_error>
#include <utility>
#include <vector>

namespace starling::storage {

namespace {

rocksdb::Slice to_slice(std::string_view s) { return {s.data(), s.size()}; }
std::string_view to_view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

bool valid_column(Column column) {
  return static_cast<std::size_t>(column) < all_columns.size();
}

// RocksDB reports a held LOCK file only as an I/O error; its text is the one
// reliable sign ("While lock file: ..." from another process, "lock hold by
// current process" from this one).
bool is_lock_error(const rocksdb::Status& s) {
  std::string text = s.ToString();
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s.IsIOError() && text.find("lock") != std::string::npos;
}

// RocksDB's info log, sent to the node's log instead of a LOG file in the
// data directory: warnings and worse only.
class WarningLogger final : public rocksdb::Logger {
 public:
  explicit WarningLogger(std::function<void(std::string_view)> sink)
      : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL), sink_(std::move(sink)) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    if (!sink_) return;
    char line[512];
    const int n = std::vsnprintf(line, sizeof line, format, ap);
    if (n > 0) sink_(std::string_view(line, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof line - 1)));
  }

 private:
  std::function<void(std::string_view)> sink_;
};

// Files only a RocksDB database has; with them but no CURRENT, the directory
// is a damaged database, not an empty one to create afresh.
bool has_rocksdb_files_without_current(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir / "CURRENT", ec)) return false;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "IDENTITY" || name.starts_with("MANIFEST-") || name.ends_with(".sst")) return true;
  }
  return false;
}

StoreError from_rocksdb(const rocksdb::Status& s, std::string context) {
  StoreErrc code = StoreErrc::io_error;
  if (s.IsCorruption()) {
    code = StoreErrc::corruption;
  } else if (s.IsInvalidArgument() || s.IsNotSupported()) {
    code = StoreErrc::invalid_argument;
  }
  return {code, std::move(context) + ": " + s.ToString()};
}

}  // namespace

struct RocksDbStore::Impl {
  std::filesystem::path dir;
  rocksdb::WriteOptions write_options;
  std::unique_ptr<rocksdb::DB> db;
  // Handles are owned by `db`'s API: released with DestroyColumnFamilyHandle
  // before the DB itself is closed. [0] is "default", [1 + Column] the rest.
  std::vector<rocksdb::ColumnFamilyHandle*> handles;

  ~Impl() {
    if (!db) return;
    for (auto* handle : handles) {
      db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    }
    db->Close().PermitUncheckedError();  // nothing useful to do with an error here
    db.reset();
  }

  rocksdb::ColumnFamilyHandle* handle(Column column) const {
    return handles[1 + static_cast<std::size_t>(column)];
  }

  // True when no column family, "default" included, holds a single key.
  bool empty() const {
    for (auto* handle : handles) {
      std::unique_ptr<rocksdb::Iterator> it{db->NewIterator(rocksdb::ReadOptions{}, handle)};
      it->SeekToFirst();
      if (it->Valid()) return false;
    }
    return true;
  }
};

RocksDbStore::RocksDbStore(Key, std::unique_ptr<Impl> impl) : impl_{std::move(impl)} {}
RocksDbStore::~RocksDbStore() = default;

const std::filesystem::path& RocksDbStore::directory() const noexcept { return impl_->dir; }

Result<std::unique_ptr<RocksDbStore>> RocksDbStore::open(const std::filesystem::path& dir,
                                                         const Options& options) {
  const std::string where = "data directory '" + dir.string() + "'";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return StoreError{StoreErrc::io_error, "cannot create " + where + ": " + ec.message()};
  }

  if (has_rocksdb_files_without_current(dir)) {
    return StoreError{StoreErrc::corruption, where + " holds RocksDB files but no CURRENT file; not opened"};
  }

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.info_log = std::make_shared<WarningLogger>(options.warn);

  // A column family we do not know means a newer layout: refuse rather than
  // open it half-blind (RocksDB would refuse too, less clearly).
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, dir.string(), &existing).ok()) {
    for (const auto& name : existing) {
      bool known = name == rocksdb::kDefaultColumnFamilyName;
      for (Column column : all_columns) known = known || name == column_name(column);
      if (!known) {
        return StoreError{StoreErrc::bad_format_version,
                          where + " has unknown column family '" + name +
                              "' (written by a newer Starling?)"};
      }
    }
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions{});
  for (Column column : all_columns) {
    descriptors.emplace_back(std::string{column_name(column)}, rocksdb::ColumnFamilyOptions{});
  }

  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->write_options.sync = options.sync_writes;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(db_options, dir.string(), descriptors, &impl->handles, &raw_db);
  impl->db.reset(raw_db);
  if (!s.ok()) {
    if (is_lock_error(s)) {
      return StoreError{StoreErrc::locked,
                        where + " is in use by another Starling process (RocksDB LOCK is held)"};
    }
    return from_rocksdb(s, "cannot open RocksDB in " + where);
  }

  // The format version: stamp a brand-new database, check an existing one.
  std::string stored;
  s = impl->db->Get(rocksdb::ReadOptions{}, impl->handle(Column::cluster),
                    to_slice(format_version_key), &stored);
  if (s.IsNotFound()) {
    if (!impl->empty()) {
      return StoreError{StoreErrc::bad_format_version,
                        where + " holds data but no Starling format version"};
    }
    rocksdb::WriteOptions durable;
    durable.sync = true;
    s = impl->db->Put(durable, impl->handle(Column::cluster), to_slice(format_version_key),
                      std::to_string(current_format_version));
    if (!s.ok()) return from_rocksdb(s, "cannot write the format version in " + where);
  } else if (!s.ok()) {
    return from_rocksdb(s, "cannot read the format version in " + where);
  } else {
    std::uint32_t version = 0;
    const auto [end, err] = std::from_chars(stored.data(), stored.data() + stored.size(), version);
    if (err != std::errc{} || end != stored.data() + stored.size() ||
        version != current_format_version) {
      return StoreError{StoreErrc::bad_format_version,
                        where + " has on-disk format version '" + stored +
                            "'; this build reads only version " +
                            std::to_string(current_format_version)};
    }
  }
  return std::make_unique<RocksDbStore>(Key{}, std::move(impl));
}

Result<std::optional<std::string>> RocksDbStore::get(Column column, std::string_view key) const {
  if (!valid_column(column)) return StoreError{StoreErrc::invalid_argument, "get: unknown column"};
  std::string value;
  rocksdb::Status s =
      impl_->db->Get(rocksdb::ReadOptions{}, impl_->handle(column), to_slice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return from_rocksdb(s, "get from " + std::string{column_name(column)});
  return std::optional<std::string>{std::move(value)};
}

Status RocksDbStore::put(Column column, std::string_view key, std::string_view value) {
  if (!valid_column(column)) return {StoreErrc::invalid_argument, "put: unknown column"};
  rocksdb::Status s =
      impl_->db->Put(impl_->write_options, impl_->handle(column), to_slice(key), to_slice(value));
  if (!s.ok()) return Status{from_rocksdb(s, "put to " + std::string{column_name(column)})};
  return {};
}

Status RocksDbStore::erase(Column column, std::string_view key) {
  if (!valid_column(column)) return {StoreErrc::invalid_argument, "erase: unknown column"};
  rocksdb::Status s = impl_->db->Delete(impl_->write_options, impl_->handle(column), to_slice(key));
  if (!s.ok()) return Status{from_rocksdb(s, "erase from " + std::string{column_name(column)})};
  return {};
}

Status RocksDbStore::write(const WriteBatch& batch) {
  const WriteBatch* one = &batch;
  return write_all({&one, 1}, impl_->write_options.sync);
}

Status RocksDbStore::write_all(std::span<const WriteBatch* const> batches, bool sync) {
  // Validate everything first: a rejected batch must change nothing.
  rocksdb::WriteBatch rocks_batch;
  for (const WriteBatch* batch : batches) {
    for (const auto& op : batch->operations()) {
      if (!valid_column(op.column)) {
        return {StoreErrc::invalid_argument, "write: batch names an unknown column"};
      }
      rocksdb::Status s;
      switch (op.kind) {
        case WriteBatch::Kind::put:
          s = rocks_batch.Put(impl_->handle(op.column), to_slice(op.key), to_slice(op.value));
          break;
        case WriteBatch::Kind::erase:
          s = rocks_batch.Delete(impl_->handle(op.column), to_slice(op.key));
          break;
        case WriteBatch::Kind::erase_prefix: {
          const std::string end = prefix_end(op.key);
          if (op.key.empty() || end.empty()) {
            return {StoreErrc::invalid_argument, "write: erase_prefix needs a prefix with an end"};
          }
          s = rocks_batch.DeleteRange(impl_->handle(op.column), to_slice(op.key), to_slice(end));
          break;
        }
      }
      if (!s.ok()) return Status{from_rocksdb(s, "write: cannot add to batch")};
    }
  }
  rocksdb::WriteOptions options = impl_->write_options;
  options.sync = sync;
  rocksdb::Status s = impl_->db->Write(options, &rocks_batch);
  if (!s.ok()) return Status{from_rocksdb(s, "write batch")};
  return {};
}

Status RocksDbStore::sync_log() {
  rocksdb::Status s = impl_->db->FlushWAL(/*sync=*/true);
  if (!s.ok()) return Status{from_rocksdb(s, "sync the write-ahead log")};
  return {};
}

Status RocksDbStore::compact_prefix(Column column, std::string_view prefix) {
  if (!valid_column(column)) return {StoreErrc::invalid_argument, "compact: unknown column"};
  const std::string end = prefix_end(prefix);
  const rocksdb::Slice begin_slice = to_slice(prefix);
  const rocksdb::Slice end_slice = to_slice(end);
  // Every column is flushed first: the write-ahead log that holds the
  // range's writes is kept while any column still has unflushed writes in it.
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  for (Column c : all_columns) handles.push_back(impl_->handle(c));
  if (rocksdb::Status f = impl_->db->Flush(rocksdb::FlushOptions{}, handles); !f.ok()) {
    return Status{from_rocksdb(f, "flush before compacting")};
  }
  rocksdb::CompactRangeOptions options;
  // Range tombstones only shrink the files once the bottom level is rewritten.
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  rocksdb::Status s = impl_->db->CompactRange(options, impl_->handle(column), prefix.empty() ? nullptr : &begin_slice,
                                              end.empty() ? nullptr : &end_slice);
  if (!s.ok()) return Status{from_rocksdb(s, "compact " + std::string{column_name(column)})};
  return {};
}

Status RocksDbStore::scan_prefix(Column column, std::string_view prefix,
                                 const ScanVisitor& visit) const {
  if (!valid_column(column)) return {StoreErrc::invalid_argument, "scan: unknown column"};
  // An iterator reads from an implicit snapshot taken when it is created.
  std::unique_ptr<rocksdb::Iterator> it{
      impl_->db->NewIterator(rocksdb::ReadOptions{}, impl_->handle(column))};
  for (it->Seek(to_slice(prefix)); it->Valid(); it->Next()) {
    const std::string_view key = to_view(it->key());
    if (!key.starts_with(prefix)) break;
    if (!visit(key, to_view(it->value()))) break;
  }
  if (!it->status().ok()) {
    return Status{from_rocksdb(it->status(), "scan of " + std::string{column_name(column)})};
  }
  return {};
}

}  // namespace starling::storage
