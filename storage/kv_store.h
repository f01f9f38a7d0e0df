#pragma once

// The storage interface the broker and the cluster code program against.
// Keys and values are opaque bytes; keys within a column sort bytewise
// (unsigned, shorter prefix first), which callers rely on for prefix scans
// such as "client id + big-endian sequence number".

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/result.h"

namespace starling::storage {

// One RocksDB column family each; see DESIGN.md "Storage". New columns are
// appended (the order is part of nothing on disk, but keep it stable anyway).
enum class Column : std::uint8_t {
  sessions,      // client id -> session record
  queue,         // client id + sequence -> queued message
  inflight,      // client id + packet id -> outbound QoS 1/2 state
  inbound_qos2,  // client id + packet id -> inbound QoS 2 awaiting PUBREL
  retained,      // topic -> retained message
  cluster,       // members, route versions, replicas, store metadata
};

inline constexpr std::array<Column, 6> all_columns{
    Column::sessions, Column::queue,    Column::inflight,
    Column::inbound_qos2, Column::retained, Column::cluster,
};

// The on-disk name of a column family; empty for a value outside the enum.
std::string_view column_name(Column column) noexcept;

// A group of writes applied all together or not at all.
class WriteBatch {
 public:
  enum class Kind : std::uint8_t { put, erase, erase_prefix };
  struct Operation {
    Kind kind;
    Column column;
    std::string key;    // the prefix, for erase_prefix
    std::string value;  // empty for erase and erase_prefix
  };

  void put(Column column, std::string key, std::string value);
  void erase(Column column, std::string key);
  // Every key that starts with `prefix` (one range tombstone, however many
  // keys it covers).
  void erase_prefix(Column column, std::string prefix);
  void clear() noexcept { operations_.clear(); }

  bool empty() const noexcept { return operations_.empty(); }
  std::size_t size() const noexcept { return operations_.size(); }
  const std::vector<Operation>& operations() const noexcept { return operations_; }

 private:
  std::vector<Operation> operations_;
};

// The smallest key above every key that starts with `prefix`; empty when
// there is none (the prefix is all 0xff bytes).
std::string prefix_end(std::string_view prefix);

// When a write counts as done (--fsync): see GroupCommit.
enum class Fsync { always, batch, never };

// Called for each entry of a scan in key order; return false to stop early.
using ScanVisitor = std::function<bool(std::string_view key, std::string_view value)>;

class KvStore {
 public:
  virtual ~KvStore() = default;

  // std::nullopt when the key is absent; an error only when the read failed.
  virtual Result<std::optional<std::string>> get(Column column, std::string_view key) const = 0;
  virtual Status put(Column column, std::string_view key, std::string_view value) = 0;
  // Erasing an absent key is not an error.
  virtual Status erase(Column column, std::string_view key) = 0;
  // Atomic: after a crash either every operation of the batch is there or none.
  virtual Status write(const WriteBatch& batch) = 0;
  // Several batches as one atomic write, synced to disk before it returns
  // when `sync` (else durable against a process crash, not a power loss).
  virtual Status write_all(std::span<const WriteBatch* const> batches, bool sync) = 0;
  // Visits every key starting with `prefix` in ascending key order, from one
  // consistent snapshot (a concurrent batch is seen whole or not at all).
  virtual Status scan_prefix(Column column, std::string_view prefix,
                             const ScanVisitor& visit) const = 0;
  // Rewrites the files that hold keys starting with `prefix` in `column` (all
  // of it for an empty prefix), so the space of what was erased there is
  // given back, write-ahead log included. Slow; blocks the caller.
  virtual Status compact_prefix(Column column, std::string_view prefix) = 0;
};

}  // namespace starling::storage
