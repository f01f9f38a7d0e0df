// The admin API under /api/v1/: JSON views of the node, its clients and
// sessions, subscriptions and retained messages, and disconnecting a client.
// Lists are paged: ?limit=N (1..1000, default 100) and ?after=CURSOR, where
// the cursor is the "next" of the previous page.
#include <algorithm>
#include <charconv>
#include <future>
#include <map>

#include <nlohmann/json.hpp>

#include "broker/http/node_api.h"
#include "broker/mqtt/topic.h"
#include "broker/mqtt/utf8.h"
#include "broker/routing/topic_match.h"

namespace starling::broker {
namespace {

using nlohmann::json;

constexpr size_t kDefaultLimit = 100;
constexpr size_t kMaxLimit = 1000;

HttpResponse ok(const json& body) { return json_response(200, body); }

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

// One page of `items` (sorted by key, unique keys) after the cursor.
struct Page {
  size_t limit = kDefaultLimit;
  std::string after;
};

std::optional<Page> page_of(const RequestTarget& t, std::string& error) {
  Page page;
  if (t.has("limit")) {
    const std::string text = t.param("limit");
    size_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < 1 || value > kMaxLimit) {
      error = "limit must be a whole number from 1 to " + std::to_string(kMaxLimit);
      return std::nullopt;
    }
    page.limit = value;
  }
  page.after = t.param("after");
  return page;
}

// Fills body["data"] with the page's items and body["next"] with the cursor
// of the next page (null on the last one). `key(i)` is item i's sort key.
template <class Key, class Render>
json paged(size_t total, const Page& page, Key key, Render render) {
  json data = json::array();
  size_t first = 0;
  if (!page.after.empty()) {
    size_t lo = 0, hi = total;  // the first item whose key is > after
    while (lo < hi) {
      const size_t mid = (lo + hi) / 2;
      if (key(mid) <= page.after) lo = mid + 1; else hi = mid;
    }
    first = lo;
  }
  const size_t end = std::min(total, first + page.limit);
  for (size_t i = first; i < end; ++i) data.push_back(render(i));
  json body{{"data", std::move(data)}, {"total", total}};
  body["next"] = end < total && end > first ? json(key(end - 1)) : json(nullptr);
  return body;
}

json subscription_json(const std::string& filter, const SubscriptionRecord& r) {
  json j{{"filter", filter},
         {"qos", static_cast<int>(r.options.qos)},
         {"no_local", r.options.no_local},
         {"retain_as_published", r.options.retain_as_published},
         {"retain_handling", static_cast<int>(r.options.retain_handling)}};
  j["subscription_id"] = r.subscription_id != 0 ? json(r.subscription_id) : json(nullptr);
  if (auto shared = mqtt::parse_shared_filter(filter)) j["share_group"] = std::string{shared->group};
  return j;
}

json client_summary(const Session& s) {
  json j{{"client_id", s.client_id()},
         {"connected", s.online()},
         {"persistent", s.persistent()},
         {"subscription_count", s.subscriptions().size()},
         {"queued", s.queued_count()},
         {"inflight", s.inflight_count()}};
  const uint32_t expiry = s.expiry_interval();
  j["expiry_interval"] = expiry == UINT32_MAX ? json(nullptr) : json(expiry);  // null: never expires
  return j;
}

HttpResponse node_info(const NodeView& n) {
  json listeners = json::array();
  for (const auto& l : n.listeners) listeners.push_back({{"name", l.name}, {"address", l.address}, {"port", l.port}});
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - n.started).count();
  return ok(json{{"node_id", n.config.node_id},
                 {"version", std::string{version()}},
                 {"uptime_seconds", uptime},
                 {"started_at", std::chrono::duration_cast<std::chrono::seconds>(n.started_wall.time_since_epoch()).count()},
                 {"listeners", std::move(listeners)},
                 {"data_dir", n.config.data_dir.string()},
                 {"connections", n.stats.connections.load()},
                 {"clients_connected", n.stats.clients_connected.load()},
                 {"sessions", n.sessions.size()},
                 {"draining", n.draining.load()}});
}

HttpResponse clients(const NodeView& n, const RequestTarget& t) {
  std::string error;
  auto page = page_of(t, error);
  if (!page) return json_error(400, error);
  const auto found = n.sessions.with_prefix(t.param("prefix"));
  return ok(paged(
      found.size(), *page, [&](size_t i) -> const std::string& { return found[i]->client_id(); },
      [&](size_t i) { return client_summary(*found[i]); }));
}

HttpResponse client(const NodeView& n, const std::string& client_id) {
  const auto session = n.sessions.find(client_id);
  if (!session) return json_error(404, "no session for client id '" + client_id + "'");
  json j = client_summary(*session);
  json subscriptions = json::array();
  for (const auto& [filter, record] : session->subscriptions()) subscriptions.push_back(subscription_json(filter, record));
  j["subscriptions"] = std::move(subscriptions);
  j["inbound_qos2"] = session->inbound_qos2_count();
  if (auto since = session->disconnected_at()) {
    j["disconnected_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - *since).count();
  }
  j["will_pending"] = session->pending_will_due().has_value();
  j["connection"] = nullptr;
  if (auto listener = session->listener()) {
    // Asked on the connection's own thread; a connection that closes meanwhile never answers.
    auto promise = std::make_shared<std::promise<ConnectionInfo>>();
    auto answer = promise->get_future();
    listener->describe([promise](const ConnectionInfo& info) { promise->set_value(info); });
    if (answer.wait_for(std::chrono::seconds(2)) == std::future_status::ready) {
      try {
        const ConnectionInfo info = answer.get();
        j["connection"] = json{{"peer", info.peer},
                               {"listener", info.listener},
                               {"protocol", info.protocol},
                               {"keep_alive", info.keep_alive}};
      } catch (const std::future_error&) {
        // Its worker stopped before asking it (shutting down): no connection to show.
      }
    }
  }
  return ok(j);
}

HttpResponse disconnect(const NodeView& n, const std::string& client_id, bool may_change) {
  if (!may_change) {
    return json_error(403, n.config.http_token.empty()
                               ? "the admin API is read-only: start the node with --http-token to allow changes"
                               : "not allowed");
  }
  const auto session = n.sessions.find(client_id);
  auto listener = session ? session->listener() : nullptr;
  if (!listener) return json_error(404, "client '" + client_id + "' is not connected");
  listener->kick(mqtt::ReasonCode::kAdministrativeAction);  // MQTT 5: DISCONNECT 0x98
  return ok(json{{"client_id", client_id}, {"disconnected", true}});
}

HttpResponse subscriptions(const NodeView& n, const RequestTarget& t) {
  const std::string topic = t.param("topic");
  if (topic.empty()) return json_error(400, "give the topic to match: ?topic=a/b/c");
  if (!mqtt::validate_topic_name(topic) || !mqtt::is_valid_mqtt_utf8(topic)) {
    return json_error(400, "'" + topic + "' is not a topic name (no wildcards)");
  }
  std::string error;
  auto page = page_of(t, error);
  if (!page) return json_error(400, error);
  struct Match {
    std::string key;  // client id, a line feed, the filter: sorts by client, then filter
    json item;
  };
  std::vector<Match> matches;
  for (const auto& session : n.router.sessions_matching(topic)) {
    for (const auto& [filter, record] : session->subscriptions()) {
      const auto shared = mqtt::parse_shared_filter(filter);
      if (!topic_matches(shared ? shared->filter : std::string_view{filter}, topic)) continue;
      json item = subscription_json(filter, record);
      item["client_id"] = session->client_id();
      matches.push_back({session->client_id() + '\n' + filter, std::move(item)});
    }
  }
  std::sort(matches.begin(), matches.end(), [](const Match& a, const Match& b) { return a.key < b.key; });
  return ok(paged(
      matches.size(), *page, [&](size_t i) -> const std::string& { return matches[i].key; },
      [&](size_t i) { return matches[i].item; }));
}

HttpResponse retained(const NodeView& n, const RequestTarget& t) {
  const std::string filter = t.param("filter", "#");
  if (!mqtt::validate_topic_filter(filter) || mqtt::parse_shared_filter(filter) || !mqtt::is_valid_mqtt_utf8(filter)) {
    return json_error(400, "'" + filter + "' is not a topic filter");
  }
  std::string error;
  auto page = page_of(t, error);
  if (!page) return json_error(400, error);
  const auto now = Clock::now();
  const auto messages = n.retained.matching(filter, now);  // in topic order
  return ok(paged(
      messages.size(), *page, [&](size_t i) -> const std::string& { return messages[i]->topic; },
      [&](size_t i) {
        const Message& m = *messages[i];
        json j{{"topic", m.topic},
               {"qos", static_cast<int>(m.qos)},
               {"payload_size", m.payload.size()},
               {"payload_base64", base64(m.payload)}};
        // As text too when it is text.
        j["payload"] = mqtt::is_valid_mqtt_utf8(m.payload) ? json(std::string{m.payload}) : json(nullptr);
        if (auto left = m.remaining_expiry(now)) j["expiry_interval"] = *left;
        return j;
      }));
}

HttpResponse members(const NodeView& n) {
  json data = json::array();
  for (const auto& m : n.cluster.members()) {
    data.push_back(json{{"node_id", m.node_id},
                        {"address", m.address.empty() ? json(nullptr) : json(m.address)},
                        {"state", m.state},
                        {"incarnation", m.incarnation},
                        {"self", m.self}});
  }
  const auto total = data.size();
  return ok(json{{"data", std::move(data)}, {"total", total}, {"next", nullptr}});
}

}  // namespace

HttpResponse handle_admin(const NodeView& n, std::string_view method, const RequestTarget& t, bool may_change) {
  const auto& s = t.segments;  // s[0] == "api", s[1] == "v1"
  const bool get = method == "GET";
  const auto is = [&s](std::initializer_list<std::string_view> path) {
    return s.size() == path.size() + 2 && std::equal(path.begin(), path.end(), s.begin() + 2);
  };
  if (is({"node"})) return get ? node_info(n) : method_not_allowed(method, "GET");
  if (is({"clients"})) return get ? clients(n, t) : method_not_allowed(method, "GET");
  if (s.size() == 4 && s[2] == "clients") {
    if (get) return client(n, s[3]);
    if (method == "DELETE") return disconnect(n, s[3], may_change);
    return method_not_allowed(method, "GET, DELETE");
  }
  if (is({"subscriptions"})) return get ? subscriptions(n, t) : method_not_allowed(method, "GET");
  if (is({"retained"})) return get ? retained(n, t) : method_not_allowed(method, "GET");
  if (is({"cluster", "members"})) return get ? members(n) : method_not_allowed(method, "GET");
  return json_error(404,
                    "no such endpoint; the API has /api/v1/node, /clients, /clients/ID, /subscriptions?topic=T, "
                    "/retained?filter=F and /cluster/members");
}

}  // namespace starling::broker
