#include "broker/net/websocket_stream.h"

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
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
using namespace std::chrono_literals;
using namespace std::string_literals;

using Client = websocket::stream<tcp::socket>;

// Runs handlers until `done()` holds, the io_context runs out of work, or
// `limit` passes; returns `done()`.
template <typename Done>
bool run_until(asio::io_context& io, Done done, std::chrono::steady_clock::duration limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    // An io_context that ran out of work stays stopped until restarted.
    if (io.stopped()) io.restart();
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline || io.run_one_for(deadline - now) == 0) return done();
  }
  return true;
}

class WebSocketStreamTest : public ::testing::Test {
 protected:
  void start_server(std::chrono::steady_clock::duration timeout = 5s) {
    acceptor_.async_accept([this, timeout](error_code ec, tcp::socket socket) {
      ASSERT_FALSE(ec) << ec.message();
      async_accept_websocket(std::move(socket), timeout, [this](error_code error, std::unique_ptr<ByteStream> s) {
        accepted_ = true;
        accept_error_ = error;
        server_ = std::move(s);
      });
    });
  }

  // Connects `client_` and starts its handshake; `protocols` is the
  // Sec-WebSocket-Protocol value, none if nullopt.
  void start_client(std::string target, std::optional<std::string> protocols) {
    client_.next_layer().connect(acceptor_.local_endpoint());
    client_.next_layer().set_option(tcp::no_delay(true));  // small frames go out at once
    if (protocols) {
      client_.set_option(websocket::stream_base::decorator([p = *protocols](websocket::request_type& request) {
        request.set(http::field::sec_websocket_protocol, p);
      }));
    }
    client_.async_handshake(response_, "127.0.0.1", target, [this](error_code ec) {
      handshaken_ = true;
      handshake_error_ = ec;
    });
  }

  // A connected pair: the client on /mqtt with the usual subprotocol list.
  void connect() {
    start_server();
    start_client("/mqtt", "mqtt, mqttv3.1");
    ASSERT_TRUE(run_until(io_, [&] { return accepted_ && handshaken_; }));
    ASSERT_FALSE(handshake_error_) << handshake_error_.message();
    ASSERT_FALSE(accept_error_) << accept_error_.message();
    ASSERT_NE(server_, nullptr);
    client_.binary(true);
  }

  // Reads from the server stream through a small buffer until `size` bytes.
  std::string server_read(std::size_t size) {
    std::string received;
    std::array<char, 3> chunk{};
    bool failed = false;
    bool reading = false;
    while (received.size() < size && !failed) {
      reading = true;
      server_->async_read_some(asio::buffer(chunk), [&](error_code ec, std::size_t n) {
        reading = false;
        failed = bool(ec);
        EXPECT_FALSE(ec) << ec.message();
        EXPECT_GT(n, 0u);  // a ByteStream read never yields nothing
        received.append(chunk.data(), n);
      });
      if (!run_until(io_, [&] { return !reading; })) break;
    }
    return received;
  }

  asio::io_context io_;
  tcp::acceptor acceptor_{io_, tcp::endpoint{asio::ip::make_address("127.0.0.1"), 0}};
  bool accepted_ = false;
  error_code accept_error_;
  std::unique_ptr<ByteStream> server_;

  Client client_{io_};
  websocket::response_type response_;
  bool handshaken_ = false;
  error_code handshake_error_;
};

TEST_F(WebSocketStreamTest, AcceptsMqttSubprotocolOnMqttPath) {
  connect();
  EXPECT_EQ(response_[http::field::sec_websocket_protocol], "mqtt");
  EXPECT_EQ(server_->listener_name(), "ws");
  EXPECT_EQ(server_->remote_address(),
            "127.0.0.1:" + std::to_string(client_.next_layer().local_endpoint().port()));
}

TEST_F(WebSocketStreamTest, ReadsBytesSplitAcrossFramesAndMessagesInOrder) {
  connect();
  // A CONNECT-like prefix split over two frames of one message, an empty
  // message (skipped), then a second message: the server sees one stream.
  const std::string first = "\x10\x0c\x00\x04MQ"s;
  const std::string second = "TT\x05\x02\x00\x3c\x00"s;
  const std::string third = "\xc0\x00"s;
  bool sent = false;
  client_.async_write_some(false, asio::buffer(first), [&](error_code ec, std::size_t) {
    ASSERT_FALSE(ec) << ec.message();
    client_.async_write_some(true, asio::buffer(second), [&](error_code ec2, std::size_t) {
      ASSERT_FALSE(ec2) << ec2.message();
      client_.async_write(asio::const_buffer{}, [&](error_code ec3, std::size_t) {
        ASSERT_FALSE(ec3) << ec3.message();
        client_.async_write(asio::buffer(third), [&](error_code ec4, std::size_t) {
          ASSERT_FALSE(ec4) << ec4.message();
          sent = true;
        });
      });
    });
  });
  const std::string expected = first + second + third;
  EXPECT_EQ(server_read(expected.size()), expected);
  EXPECT_TRUE(run_until(io_, [&] { return sent; }));
}

TEST_F(WebSocketStreamTest, GatheredWriteArrivesAsOneBinaryMessage) {
  connect();
  const std::string head = "\x30\x07\x00\x01t"s;
  const std::string tail = "data";
  const std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(tail)};
  std::optional<std::size_t> written;
  server_->async_write(buffers, [&](error_code ec, std::size_t n) {
    EXPECT_FALSE(ec) << ec.message();
    written = n;
  });

  beast::flat_buffer message;
  bool received = false;
  client_.async_read(message, [&](error_code ec, std::size_t) {
    EXPECT_FALSE(ec) << ec.message();
    received = true;
  });
  ASSERT_TRUE(run_until(io_, [&] { return received && written; }));
  EXPECT_EQ(*written, head.size() + tail.size());
  EXPECT_TRUE(client_.got_binary());
  EXPECT_EQ(beast::buffers_to_string(message.data()), head + tail);
}

TEST_F(WebSocketStreamTest, OtherPathGets404) {
  start_server();
  start_client("/other", "mqtt");
  ASSERT_TRUE(run_until(io_, [&] { return accepted_ && handshaken_; }));
  EXPECT_EQ(handshake_error_, websocket::error::upgrade_declined);
  EXPECT_EQ(response_.result(), http::status::not_found);
  EXPECT_EQ(accept_error_, WebSocketError::wrong_path);
  EXPECT_EQ(server_, nullptr);
}

TEST_F(WebSocketStreamTest, MissingSubprotocolGets400) {
  start_server();
  start_client("/mqtt", std::nullopt);
  ASSERT_TRUE(run_until(io_, [&] { return accepted_ && handshaken_; }));
  EXPECT_EQ(handshake_error_, websocket::error::upgrade_declined);
  EXPECT_EQ(response_.result(), http::status::bad_request);
  EXPECT_EQ(accept_error_, WebSocketError::no_mqtt_subprotocol);
  EXPECT_EQ(server_, nullptr);
}

TEST_F(WebSocketStreamTest, SubprotocolListWithoutMqttGets400) {
  start_server();
  start_client("/mqtt", "mqttv3.1, mqtt-sn");
  ASSERT_TRUE(run_until(io_, [&] { return accepted_ && handshaken_; }));
  EXPECT_EQ(response_.result(), http::status::bad_request);
  EXPECT_EQ(accept_error_, WebSocketError::no_mqtt_subprotocol);
}

TEST_F(WebSocketStreamTest, StalledHandshakeIsCutOffAfterTimeout) {
  const auto started = std::chrono::steady_clock::now();
  start_server(200ms);
  client_.next_layer().connect(acceptor_.local_endpoint());
  const std::string partial = "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  asio::write(client_.next_layer(), asio::buffer(partial));

  std::array<char, 16> sink{};
  bool cut_off = false;
  client_.next_layer().async_read_some(asio::buffer(sink), [&](error_code ec, std::size_t) {
    EXPECT_TRUE(ec);  // EOF or reset: the server sent nothing and hung up
    cut_off = true;
  });
  ASSERT_TRUE(run_until(io_, [&] { return accepted_ && cut_off; }, 3s));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 200ms);
  EXPECT_EQ(accept_error_, asio::error::timed_out);
  EXPECT_EQ(server_, nullptr);
}

TEST_F(WebSocketStreamTest, TextMessageFailsTheReadAndClosesTheConnection) {
  connect();
  client_.text(true);
  client_.async_write(asio::buffer(std::string_view{"hello"}), [](error_code, std::size_t) {});
  std::array<char, 16> chunk{};
  std::optional<error_code> read_error;
  server_->async_read_some(asio::buffer(chunk), [&](error_code ec, std::size_t) { read_error = ec; });
  ASSERT_TRUE(run_until(io_, [&] { return read_error.has_value(); }));
  EXPECT_EQ(*read_error, WebSocketError::text_frame);

  beast::flat_buffer message;
  std::optional<error_code> client_error;
  client_.async_read(message, [&](error_code ec, std::size_t) { client_error = ec; });
  ASSERT_TRUE(run_until(io_, [&] { return client_error.has_value(); }));
  EXPECT_TRUE(*client_error);
}

TEST_F(WebSocketStreamTest, CloseFailsAPendingRead) {
  connect();
  std::array<char, 16> chunk{};
  std::optional<error_code> read_error;
  server_->async_read_some(asio::buffer(chunk), [&](error_code ec, std::size_t) { read_error = ec; });
  server_->close();
  ASSERT_TRUE(run_until(io_, [&] { return read_error.has_value(); }));
  EXPECT_TRUE(*read_error);
}

}  // namespace
}  // namespace starling::broker
