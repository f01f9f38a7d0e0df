#pragma once

// Errors as values for the storage layer: a Status for operations that return
// nothing, a Result<T> for those that return something.

#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>

namespace starling::storage {

enum class StoreErrc {
  io_error = 1,        // the file system refused (permissions, disk full, ...)
  locked,              // another process (or another open in this one) holds the DB
  corruption,          // RocksDB found damaged data
  bad_format_version,  // the directory holds a format this build cannot read
  invalid_argument,    // the caller passed something the store cannot accept
};

const std::error_category& store_category() noexcept;
std::error_code make_error_code(StoreErrc e) noexcept;

struct StoreError {
  StoreErrc code;
  std::string message;  // one line, names the directory or key involved
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StoreErrc code, std::string message) : error_{code, std::move(message)}, ok_{false} {}
  explicit Status(StoreError error) : error_{std::move(error)}, ok_{false} {}

  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  // Only meaningful when !ok().
  const StoreError& error() const noexcept { return error_; }
  StoreErrc code() const noexcept { return error_.code; }
  const std::string& message() const noexcept { return error_.message; }

 private:
  StoreError error_{};
  bool ok_ = true;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_{std::in_place_index<0>, std::move(value)} {}  // NOLINT: implicit on purpose
  Result(StoreError error) : data_{std::in_place_index<1>, std::move(error)} {}  // NOLINT

  bool ok() const noexcept { return data_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(data_); }
  const T& value() const& { return std::get<0>(data_); }
  T&& value() && { return std::get<0>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const StoreError& error() const { return std::get<1>(data_); }
  Status status() const { return ok() ? Status{} : Status{error()}; }

 private:
  std::variant<T, StoreError> data_;
};

}  // namespace starling::storage

template <>
struct std::is_error_code_enum<starling::storage::StoreErrc> : std::true_type {};
