#include "broker/http/node_api.h"

#include <sys/statvfs.h>

#include <nlohmann/json.hpp>

namespace starling::broker {
namespace {

using nlohmann::json;

// Compares every byte, not stopping at the first difference, so the time a
// refusal takes says little about how much of a guess was right.
bool same_token(std::string_view given, std::string_view token) {
  if (given.size() != token.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < token.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ token[i]);
  return diff == 0;
}

}  // namespace

// Below this the node reports not ready: RocksDB preallocates its log, so
// small writes go on succeeding on a full disk and no write failure would say
// so in time.
constexpr uint64_t kMinFreeBytes = 1024 * 1024;

std::optional<uint64_t> NodeView::storage_free_bytes() const {
  struct statvfs fs {};
  if (::statvfs(config.data_dir.c_str(), &fs) != 0) return std::nullopt;
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

HttpResponse json_response(unsigned status, const nlohmann::json& body) {
  return HttpResponse{status, "application/json", body.dump() + "\n", {}};
}

HttpResponse method_not_allowed(std::string_view method, std::string allow) {
  auto r = json_error(405, "method " + std::string{method} + " not allowed here; use " + allow);
  r.headers.emplace_back("Allow", std::move(allow));
  return r;
}

HttpResponse json_error(unsigned status, std::string_view message) {
  return json_response(status, json{{"error", message}});
}

HttpResponse NodeApi::handle(const HttpRequest& request) const {
  const auto target = parse_request_target(request.target);
  if (!target) return json_error(400, "cannot parse the request target");
  const auto& s = target->segments;
  const bool get = request.method == "GET";

  if (s.size() == 1 && s[0] == "metrics") {
    if (!get) return method_not_allowed(request.method, "GET");
    return HttpResponse{200, "text/plain; version=0.0.4; charset=utf-8", view_.metrics.serialize(view_.gauges()), {}};
  }
  if (s.size() == 1 && s[0] == "healthz") {
    if (!get) return method_not_allowed(request.method, "GET");
    const auto stuck = view_.unresponsive_loops(std::chrono::seconds(2));
    if (!stuck.empty()) return json_response(503, json{{"status", "unresponsive"}, {"loops", stuck}});
    return json_response(200, json{{"status", "ok"}});
  }
  if (s.size() == 1 && s[0] == "readyz") {
    if (!get) return method_not_allowed(request.method, "GET");
    std::vector<std::string> reasons;
    if (view_.draining.load()) reasons.emplace_back("draining: the node is shutting down");
    else if (!view_.accepting.load()) reasons.emplace_back("the MQTT listeners are not accepting yet");
    if (view_.stats.store_failing.load()) reasons.emplace_back("storage: the last write to the data directory failed");
    if (auto free = view_.storage_free_bytes(); free && *free < kMinFreeBytes) {
      reasons.emplace_back("storage: " + std::to_string(*free) + " bytes free in the data directory");
    }
    for (auto& reason : view_.cluster.not_ready()) reasons.push_back("cluster: " + std::move(reason));
    if (!reasons.empty()) return json_response(503, json{{"ready", false}, {"reasons", reasons}});
    return json_response(200, json{{"ready", true}});
  }
  if (s.size() >= 2 && s[0] == "api" && s[1] == "v1") {
    const std::string& token = view_.config.http_token;
    bool authorized = false;
    if (!token.empty()) {
      constexpr std::string_view kBearer = "Bearer ";
      const std::string_view given = request.authorization;
      authorized = given.starts_with(kBearer) && same_token(given.substr(kBearer.size()), token);
      if (!authorized) {
        auto r = json_error(401, "this API needs the node's token: Authorization: Bearer <token>");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"starling\"");
        return r;
      }
    }
    return handle_admin(view_, request.method, *target, authorized);
  }
  return json_error(404, "no such endpoint; try /metrics, /healthz, /readyz or /api/v1/node");
}

}  // namespace starling::broker
