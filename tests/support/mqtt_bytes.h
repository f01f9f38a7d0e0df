// Building MQTT wire bytes by hand in tests.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "broker/mqtt/types.h"

namespace starling::mqtt::test {

using Bytes = std::vector<uint8_t>;

inline Bytes bytes(std::initializer_list<uint8_t> b) { return Bytes(b); }

inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Raw bytes of a string, no length prefix.
inline Bytes raw(std::string_view s) { return Bytes(s.begin(), s.end()); }

// A string or binary field holding raw bytes: two bytes of length, then them.
inline Bytes str_bytes(const Bytes& b) {
  Bytes out{static_cast<uint8_t>(b.size() >> 8), static_cast<uint8_t>(b.size() & 0xFF)};
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// A UTF-8 string or binary data field.
inline Bytes str(std::string_view s) { return str_bytes(raw(s)); }

// A variable byte integer.
inline Bytes vbi(uint32_t n) {
  Bytes out;
  do {
    uint8_t b = n % 128;
    n /= 128;
    if (n) b |= 0x80;
    out.push_back(b);
  } while (n);
  return out;
}

// A whole packet: first byte, remaining length, body.
inline Bytes wire(uint8_t first, const Bytes& body) {
  return cat({bytes({first}), vbi(static_cast<uint32_t>(body.size())), body});
}

inline std::string hex(ByteView b) {
  static const char* digits = "0123456789ABCDEF";
  std::string s;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i) s += ' ';
    s += digits[b[i] >> 4];
    s += digits[b[i] & 15];
  }
  return s;
}

}  // namespace starling::mqtt::test
