// The transport under an MQTT connection: plain TCP, TLS or WebSocket, all seen
// as an ordered byte stream. A stream lives on one worker's io_context and its
// operations are started from that worker's thread only.
#pragma once

#include <memory>
#include <span>
#include <string>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

namespace starling::broker {

using IoHandler = boost::asio::any_completion_handler<void(boost::system::error_code, std::size_t)>;

// What waits for a stream to become readable (the connection). A plain
// interface rather than a type-erased handler: an idle connection's pending
// wait then holds one shared pointer and allocates nothing else.
class ReadableWaiter {
 public:
  // Bytes can be read (or the peer closed); an error when the wait failed.
  virtual void on_readable(boost::system::error_code ec) = 0;

 protected:
  ~ReadableWaiter() = default;
};

class ByteStream {
 public:
  virtual ~ByteStream() = default;

  // Reads at least one byte into `buffer` (like async_read_some).
  virtual void async_read_some(boost::asio::mutable_buffer buffer, IoHandler handler) = 0;
  // Whether the stream can wait for bytes without a buffer (so an idle
  // connection holds none) and read what is there without waiting: plain TCP.
  // A WebSocket frame is read into a buffer.
  virtual bool can_wait_readable() const { return false; }
  // Tells `waiter` when a read would find bytes (or the peer closed).
  virtual void async_wait_readable(std::shared_ptr<ReadableWaiter> waiter) {
    boost::asio::post(executor(), [w = std::move(waiter)] { w->on_readable({}); });
  }
  // Reads what is there now; would_block when nothing is.
  virtual std::size_t read_some_now(boost::asio::mutable_buffer, boost::system::error_code& ec) {
    ec = boost::asio::error::would_block;
    return 0;
  }
  // Writes all of `buffers` (gathered), completing once everything is written.
  // The buffers must stay valid until the handler runs.
  virtual void async_write(std::span<const boost::asio::const_buffer> buffers, IoHandler handler) = 0;
  // Closes at once; pending operations complete with an error.
  virtual void close() = 0;

  // Moving to another worker, plain TCP only. release_worker(), on the old
  // worker's thread, lets go of the socket there (a pending readable wait
  // completes with operation_aborted); attach_worker(), on the new worker's
  // thread, takes it up there. No other operation may run between.
  struct Released {
    int fd = -1;
    boost::asio::ip::tcp protocol = boost::asio::ip::tcp::v4();
  };
  virtual bool can_move() const { return false; }
  virtual Released release_worker() { return {}; }
  virtual boost::system::error_code attach_worker(boost::asio::io_context&, Released) {
    return boost::asio::error::operation_not_supported;
  }

  virtual boost::asio::any_io_executor executor() = 0;
  // "127.0.0.1:53124", for logs.
  virtual std::string remote_address() const = 0;
  // "mqtt", "mqtts", "ws": the listener the connection came through.
  virtual std::string_view listener_name() const = 0;
};

// A TCP socket bound to one worker's io_context: its operations carry that
// concrete executor, smaller than a type-erased one, and track work without
// allocating.
using TcpSocket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

// Plain TCP. TCP_NODELAY is set, so small packets never wait for a delayed ACK.
std::unique_ptr<ByteStream> make_tcp_stream(TcpSocket socket);

}  // namespace starling::broker
