// MQTT over WebSocket (MQTT 5.0 section 6): the HTTP upgrade on path "/mqtt"
// with subprotocol "mqtt", then binary messages seen as one byte stream.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <type_traits>

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include "broker/net/byte_stream.h"

namespace starling::broker {

// Why an upgrade was refused or a WebSocket stream failed, beyond the
// transport's own errors.
enum class WebSocketError {
  wrong_path = 1,       // request path is not /mqtt; answered 404
  no_mqtt_subprotocol,  // Sec-WebSocket-Protocol lacks "mqtt"; answered 400
  text_frame,           // a text message arrived [MQTT-6.0.0-1]; connection closed
};

const boost::system::error_category& websocket_category() noexcept;
boost::system::error_code make_error_code(WebSocketError error) noexcept;

// Large enough for any sane MQTT traffic, small enough that one message can't
// exhaust memory.
inline constexpr std::size_t kDefaultWebSocketMessageMax = 16 * 1024 * 1024;

using WebSocketAcceptHandler =
    std::function<void(boost::system::error_code, std::unique_ptr<ByteStream>)>;

// Reads the HTTP upgrade request from `socket`, refuses it with 404 (wrong
// path) or 400 (no "mqtt" subprotocol, not a valid upgrade), else answers 101
// with "Sec-WebSocket-Protocol: mqtt". `done` runs once, on the socket's
// executor: with a stream (listener_name() "ws") on success, or with an error
// and nullptr; boost::asio::error::timed_out if the whole handshake took
// longer than `handshake_timeout`. A message larger than `read_message_max`
// fails the stream's reads.
void async_accept_websocket(boost::asio::ip::tcp::socket socket,
                            std::chrono::steady_clock::duration handshake_timeout,
                            WebSocketAcceptHandler done,
                            std::size_t read_message_max = kDefaultWebSocketMessageMax);

}  // namespace starling::broker

template <>
struct boost::system::is_error_code_enum<starling::broker::WebSocketError> : std::true_type {};
