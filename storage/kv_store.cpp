#include "storage/kv_store.h"

#include <utility>

namespace starling::storage {

std::string_view column_name(Column column) noexcept {
  switch (column) {
    case Column::sessions: return "sessions";
    case Column::queue: return "queue";
    case Column::inflight: return "inflight";
    case Column::inbound_qos2: return "inbound_qos2";
    case Column::retained: return "retained";
    case Column::cluster: return "cluster";
  }
  return {};
}

void WriteBatch::put(Column column, std::string key, std::string value) {
  operations_.push_back({Kind::put, column, std::move(key), std::move(value)});
}

void WriteBatch::erase(Column column, std::string key) {
  operations_.push_back({Kind::erase, column, std::move(key), {}});
}

void WriteBatch::erase_prefix(Column column, std::string prefix) {
  operations_.push_back({Kind::erase_prefix, column, std::move(prefix), {}});
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last != 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return end;
}

namespace {

class StoreCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "starling.storage"; }
  std::string message(int value) const override {
    switch (static_cast<StoreErrc>(value)) {
      case StoreErrc::io_error: return "I/O error";
      case StoreErrc::locked: return "database is locked by another user";
      case StoreErrc::corruption: return "database is corrupted";
      case StoreErrc::bad_format_version: return "unknown on-disk format version";
      case StoreErrc::invalid_argument: return "invalid argument";
    }
    return "unknown storage error";
  }
};

}  // namespace

const std::error_category& store_category() noexcept {
  // A function-local static, not a global: error categories must be unique
  // objects, and this one has no state.
  static const StoreCategory category;
  return category;
}

std::error_code make_error_code(StoreErrc e) noexcept {
  return {static_cast<int>(e), store_category()};
}

}  // namespace starling::storage
