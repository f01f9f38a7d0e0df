// The node's one HTTP listener (/metrics, /healthz, /readyz, /api/v1/...):
// Boost.Beast on a thread of its own, so a scrape or an admin call never
// waits behind MQTT traffic and may itself wait on the workers (health).
// HTTP/1.1 with keep-alive; small requests only (no bodies are accepted).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

#include "broker/net/host_port.h"
#include "broker/net/listen_address.h"

namespace starling::broker {

struct HttpRequest {
  std::string method;  // "GET", "DELETE", ...
  std::string target;  // path and query, as sent
  std::string authorization;  // the Authorization header, if any
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class HttpServer {
 public:
  // Binds `address` (port 0: a free one); the error says which address
  // failed. Nothing is served before serve().
  struct Started;
  static Started bind(const HostPort& address, spdlog::logger& log);
  // Serves with `handler` on the server's own thread until destroyed.
  void serve(HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Stops accepting; requests under way finish. The destructor does it too.
  void close_listener();
  const ListenResult& bound() const;

  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

struct HttpServer::Started {
  std::unique_ptr<HttpServer> server;  // null on failure
  std::string error;
};

}  // namespace starling::broker
