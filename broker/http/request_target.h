// A request target ("/api/v1/clients/a%2Fb?limit=10") split into its decoded
// path segments and query parameters.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace starling::broker {

struct RequestTarget {
  std::vector<std::string> segments;  // "/api/v1/clients/x" -> {"api", "v1", "clients", "x"}
  std::map<std::string, std::string, std::less<>> query;

  // A query parameter, or `fallback` when it is absent.
  std::string param(std::string_view name, std::string_view fallback = {}) const;
  bool has(std::string_view name) const { return query.find(name) != query.end(); }
};

// Percent-decoding ("+" is a space only in the query); nullopt for a broken
// escape or a target that is not a path.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);
std::optional<RequestTarget> parse_request_target(std::string_view target);

}  // namespace starling::broker
