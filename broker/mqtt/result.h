// Errors the codec reports, as values. Each carries the MQTT 5 reason code a
// server sends (or closes with) and a fixed description for the log.
#pragma once

#include <cassert>
#include <string_view>
#include <utility>
#include <variant>

#include "broker/mqtt/reason_code.h"

namespace starling::mqtt {

struct Error {
  ReasonCode code;
  std::string_view detail;  // static text, safe to keep

  friend bool operator==(const Error&, const Error&) = default;
};

// A small stand-in for std::expected (C++23): a T or an Error.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}             // NOLINT: implicit by design
  Result(Error error) : v_(error) {}                    // NOLINT
  explicit operator bool() const { return v_.index() == 0; }
  bool ok() const { return v_.index() == 0; }
  T& value() & { assert(ok()); return std::get<0>(v_); }
  const T& value() const& { assert(ok()); return std::get<0>(v_); }
  T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
  const Error& error() const { assert(!ok()); return std::get<1>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

// Result of an operation with no value.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(error), ok_(false) {}  // NOLINT
  explicit operator bool() const { return ok_; }
  bool ok() const { return ok_; }
  const Error& error() const { assert(!ok_); return error_; }

 private:
  Error error_{ReasonCode::kSuccess, {}};
  bool ok_ = true;
};

}  // namespace starling::mqtt
