// MQTT over WebSocket: the upgrade handshake and the byte-stream adapter.
#include "broker/net/websocket_stream.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace starling::broker {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using asio::ip::tcp;
using boost::system::error_code;

constexpr std::string_view kPath = "/mqtt";
constexpr std::string_view kSubprotocol = "mqtt";
// An upgrade request is a few hundred bytes; the cap stops a client from
// making us buffer an endless header.
constexpr std::size_t kMaxRequestBytes = 8 * 1024;

using Ws = websocket::stream<tcp::socket>;

class WebSocketErrorCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "starling.websocket"; }
  std::string message(int value) const override {
    switch (static_cast<WebSocketError>(value)) {
      case WebSocketError::wrong_path: return "WebSocket upgrade for a path other than /mqtt";
      case WebSocketError::no_mqtt_subprotocol: return "WebSocket upgrade without the mqtt subprotocol";
      case WebSocketError::text_frame: return "WebSocket text message where MQTT needs binary";
    }
    return "unknown WebSocket error";
  }
};

void close_socket(Ws& ws) {
  error_code ignored;
  auto& socket = beast::get_lowest_layer(ws);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

// True if a Sec-WebSocket-Protocol value such as "mqtt, mqttv3.1" lists "mqtt".
bool lists_mqtt(std::string_view value) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    std::string_view token = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view{} : value.substr(comma + 1);
    const std::size_t first = token.find_first_not_of(" \t");
    if (first == std::string_view::npos) continue;
    token = token.substr(first, token.find_last_not_of(" \t") - first + 1);
    if (token == kSubprotocol) return true;
  }
  return false;
}

bool offers_mqtt(const http::request<http::empty_body>& request) {
  // The header may also come as several fields, each a list.
  auto [it, end] = request.equal_range(http::field::sec_websocket_protocol);
  for (; it != end; ++it) {
    if (lists_mqtt(std::string_view{it->value().data(), it->value().size()})) return true;
  }
  return false;
}

// Boost 1.81's any_completion_executor can't be required to be
// blocking.never, which Beast's websocket operations need in order to post.
// So Beast runs on the stream's executor and the result is dispatched to the
// caller's handler through its own associated executor.
class OnStreamExecutor {
 public:
  using executor_type = asio::any_io_executor;
  using cancellation_slot_type = asio::cancellation_slot;

  OnStreamExecutor(IoHandler handler, executor_type executor)
      : handler_(std::move(handler)), executor_(std::move(executor)) {}

  executor_type get_executor() const noexcept { return executor_; }
  cancellation_slot_type get_cancellation_slot() const noexcept {
    return asio::get_associated_cancellation_slot(handler_);
  }

  void operator()(error_code ec, std::size_t n) {
    auto target = asio::get_associated_executor(handler_, executor_);
    asio::dispatch(target, [handler = std::move(handler_), ec, n]() mutable { std::move(handler)(ec, n); });
  }

 private:
  IoHandler handler_;
  executor_type executor_;
};

class WebSocketStream final : public ByteStream {
 public:
  explicit WebSocketStream(tcp::socket socket) : ws_(std::move(socket)) {
    error_code ignored;
    ws_.next_layer().set_option(tcp::no_delay(true), ignored);
    auto ep = ws_.next_layer().remote_endpoint(ignored);
    remote_ = ignored ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  Ws& ws() { return ws_; }

  void async_read_some(asio::mutable_buffer buffer, IoHandler handler) override {
    OnStreamExecutor wrapped{std::move(handler), ws_.get_executor()};
    asio::async_compose<OnStreamExecutor, void(error_code, std::size_t)>(ReadOp{ws_, buffer}, wrapped, ws_);
  }

  void async_write(std::span<const asio::const_buffer> buffers, IoHandler handler) override {
    // Beast copies the sequence into its operation, so the vector need not
    // outlive this call; the caller's span array might not.
    ws_.async_write(std::vector<asio::const_buffer>(buffers.begin(), buffers.end()),
                    OnStreamExecutor{std::move(handler), ws_.get_executor()});
  }

  void close() override { close_socket(ws_); }

  asio::any_io_executor executor() override { return ws_.get_executor(); }
  std::string remote_address() const override { return remote_; }
  std::string_view listener_name() const override { return "ws"; }

 private:
  // Beast completes a read with 0 bytes on an empty frame or message, but a
  // ByteStream read yields at least one byte: read on until data arrives. A
  // text message fails the connection as MQTT requires.
  struct ReadOp {
    Ws& ws;
    asio::mutable_buffer buffer;
    enum { starting, empty_buffer, reading } state = starting;

    template <typename Self>
    void operator()(Self& self, error_code ec = {}, std::size_t n = 0) {
      switch (state) {
        case starting:
          if (buffer.size() == 0) {
            // Beast asserts on an empty buffer; complete like a socket would,
            // but not from inside the initiating call.
            state = empty_buffer;
            asio::post(ws.get_executor(), std::move(self));
            return;
          }
          break;
        case empty_buffer:
          self.complete(error_code{}, 0);
          return;
        case reading:
          if (!ec && ws.got_text()) {
            close_socket(ws);
            self.complete(make_error_code(WebSocketError::text_frame), 0);
            return;
          }
          if (ec || n > 0) {
            self.complete(ec, n);
            return;
          }
          break;
      }
      state = reading;
      ws.async_read_some(buffer, std::move(self));
    }
  };

  Ws ws_;
  std::string remote_;
};

// One upgrade handshake, kept alive by its pending operations.
class Handshake : public std::enable_shared_from_this<Handshake> {
 public:
  Handshake(tcp::socket socket, std::chrono::steady_clock::duration timeout, WebSocketAcceptHandler done,
            std::size_t read_message_max)
      : stream_(std::make_unique<WebSocketStream>(std::move(socket))),
        timer_(stream_->executor()),
        timeout_(timeout),
        done_(std::move(done)),
        read_message_max_(read_message_max) {
    parser_.header_limit(kMaxRequestBytes);
  }

  void start() {
    // One deadline for the whole handshake: closing the socket fails whatever
    // step is pending, so a silent or slow client can't hold it open.
    timer_.expires_after(timeout_);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->finished_) return;
      self->timed_out_ = true;
      close_socket(self->ws());
    });
    http::async_read(ws().next_layer(), buffer_, parser_,
                     [self = shared_from_this()](error_code ec, std::size_t) { self->on_request(ec); });
  }

 private:
  Ws& ws() { return stream_->ws(); }

  void on_request(error_code ec) {
    if (ec) return finish(ec);
    const auto& request = parser_.get();
    const std::string_view target{request.target().data(), request.target().size()};
    if (target.substr(0, target.find('?')) != kPath) {
      return refuse(http::status::not_found, WebSocketError::wrong_path);
    }
    if (!offers_mqtt(request)) return refuse(http::status::bad_request, WebSocketError::no_mqtt_subprotocol);

    ws().set_option(websocket::stream_base::decorator([](websocket::response_type& response) {
      response.set(http::field::sec_websocket_protocol, kSubprotocol);
    }));
    ws().binary(true);
    // One frame per write: the broker already gathers a whole packet batch.
    ws().auto_fragment(false);
    ws().read_message_max(read_message_max_);
    // Beast itself answers a malformed upgrade (no key, wrong version) with
    // 400 and fails here.
    ws().async_accept(request, [self = shared_from_this()](error_code ec) { self->on_accepted(ec); });
  }

  void refuse(http::status status, WebSocketError why) {
    refusal_.version(parser_.get().version());
    refusal_.result(status);
    refusal_.keep_alive(false);
    refusal_.set(http::field::content_type, "text/plain");
    refusal_.body() = make_error_code(why).message() + "\n";
    refusal_.prepare_payload();
    http::async_write(ws().next_layer(), refusal_,
                      [self = shared_from_this(), why](error_code, std::size_t) { self->finish(why); });
  }

  void on_accepted(error_code ec) {
    if (!ec) {
      // From here on idleness is MQTT's keep-alive business; only a closing
      // handshake stays bounded, so a peer can't stall it forever.
      websocket::stream_base::timeout options{};
      options.handshake_timeout = timeout_;
      options.idle_timeout = websocket::stream_base::none();
      options.keep_alive_pings = false;
      ws().set_option(options);
    }
    finish(ec);
  }

  void finish(error_code ec) {
    finished_ = true;
    timer_.cancel();
    // The deadline wins even over a step that completed just as it passed.
    if (timed_out_) ec = asio::error::timed_out;
    WebSocketAcceptHandler done = std::move(done_);
    if (ec) {
      close_socket(ws());
      stream_.reset();
      done(ec, nullptr);
      return;
    }
    done(ec, std::move(stream_));
  }

  std::unique_ptr<WebSocketStream> stream_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::duration timeout_;
  beast::flat_buffer buffer_{kMaxRequestBytes};
  http::request_parser<http::empty_body> parser_;
  http::response<http::string_body> refusal_;
  WebSocketAcceptHandler done_;
  std::size_t read_message_max_;
  bool timed_out_ = false;
  bool finished_ = false;
};

}  // namespace

const boost::system::error_category& websocket_category() noexcept {
  static const WebSocketErrorCategory category;
  return category;
}

boost::system::error_code make_error_code(WebSocketError error) noexcept {
  return {static_cast<int>(error), websocket_category()};
}

void async_accept_websocket(tcp::socket socket, std::chrono::steady_clock::duration handshake_timeout,
                            WebSocketAcceptHandler done, std::size_t read_message_max) {
  std::make_shared<Handshake>(std::move(socket), handshake_timeout, std::move(done), read_message_max)->start();
}

}  // namespace starling::broker
