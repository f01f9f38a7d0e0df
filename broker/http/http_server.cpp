#include "broker/http/http_server.h"

#include <chrono>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

namespace starling::broker {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

namespace {

constexpr auto kIdleTimeout = std::chrono::seconds(30);  // for a whole request, and between requests
constexpr size_t kMaxHeaderBytes = 16 * 1024;
constexpr size_t kMaxBodyBytes = 0;  // nothing here takes a body

// One client connection: read a request, answer it, repeat while keep-alive.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, const HttpHandler& handler, spdlog::logger& log)
      : stream_(std::move(socket)), handler_(handler), log_(log) {}

  void read() {
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(kMaxBodyBytes);
    stream_.expires_after(kIdleTimeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted) {
      return close();
    }
    if (ec) {
      // A malformed or oversized request: answered once, then closed.
      HttpResponse bad{ec == http::error::body_limit ? 413u : 400u, "application/json",
                       R"({"error":"bad request: )" + ec.message() + "\"}\n", {}};
      return write(bad, /*keep_alive=*/false, 11);
    }
    const auto& req = parser_->get();
    HttpRequest request{std::string(req.method_string()), std::string(req.target()),
                        std::string(req[http::field::authorization])};
    HttpResponse response;
    try {
      response = handler_(request);
    } catch (const std::exception& e) {
      // A bug in an endpoint must not take the listener down.
      log_.error("http {} {}: {}", request.method, request.target, e.what());
      response = HttpResponse{500, "application/json", R"({"error":"internal error"})" "\n", {}};
    }
    write(response, req.keep_alive(), req.version());
  }

  void write(const HttpResponse& r, bool keep_alive, unsigned version) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), version);
    res->set(http::field::server, "starling");
    res->set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res->set(name, value);
    res->body() = r.body;
    res->keep_alive(keep_alive);
    res->prepare_payload();
    stream_.expires_after(kIdleTimeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, size_t) {
      if (ec || !res->keep_alive()) return self->close();
      self->read();
    });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  const HttpHandler& handler_;
  spdlog::logger& log_;
};

}  // namespace

struct HttpServer::Impl {
  explicit Impl(spdlog::logger& l) : log(l) {}

  void accept() {
    bound.acceptor->async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !bound.acceptor->is_open()) return;
      if (!ec) {
        std::make_shared<HttpSession>(std::move(socket), handler, log)->read();
        return accept();
      }
      retry.after_failure(io.get_executor(), log, "http", ec, [this] {
        if (bound.acceptor->is_open()) accept();
      });
    });
  }

  HttpHandler handler;
  spdlog::logger& log;
  asio::io_context io{1};
  AcceptRetry retry;
  ListenResult bound;
  std::thread thread;
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::Started HttpServer::bind(const HostPort& address, spdlog::logger& log) {
  auto impl = std::make_unique<Impl>(log);
  impl->bound = listen_on(impl->io.get_executor(), address);
  if (!impl->bound.ok()) return Started{nullptr, impl->bound.error};
  return Started{std::make_unique<HttpServer>(std::move(impl)), {}};
}

void HttpServer::serve(HttpHandler handler) {
  Impl& i = *impl_;
  i.handler = std::move(handler);
  i.accept();
  i.thread = std::thread([&i] { i.io.run(); });
}

void HttpServer::close_listener() {
  asio::post(impl_->io, [&i = *impl_] {
    beast::error_code ignored;
    i.bound.acceptor->close(ignored);
  });
}

const ListenResult& HttpServer::bound() const { return impl_->bound; }

HttpServer::~HttpServer() {
  impl_->io.stop();  // sessions under way are dropped with the context
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace starling::broker
