// Plain TCP transport.
#include <vector>

#include <boost/asio/write.hpp>

#include "broker/net/byte_stream.h"

namespace starling::broker {
namespace {

namespace asio = boost::asio;
using boost::asio::ip::tcp;

class TcpStream final : public ByteStream {
 public:
  explicit TcpStream(TcpSocket socket) : socket_(std::move(socket)) {
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    // For read_some_now; asynchronous operations work the same either way.
    socket_.non_blocking(true, ignored);
  }

  void async_read_some(asio::mutable_buffer buffer, IoHandler handler) override {
    socket_.async_read_some(buffer, std::move(handler));
  }

  bool can_wait_readable() const override { return true; }
  std::size_t read_some_now(asio::mutable_buffer buffer, boost::system::error_code& ec) override {
    return socket_.read_some(buffer, ec);  // non-blocking since construction
  }
  void async_wait_readable(std::shared_ptr<ReadableWaiter> waiter) override {
    socket_.async_wait(tcp::socket::wait_read,
                       [w = std::move(waiter)](boost::system::error_code ec) { w->on_readable(ec); });
  }

  void async_write(std::span<const asio::const_buffer> buffers, IoHandler handler) override {
    asio::async_write(socket_, buffers, std::move(handler));
  }

  void close() override {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  asio::any_io_executor executor() override { return socket_.get_executor(); }
  // Asked for by log lines only: not kept, an idle connection costs less.
  std::string remote_address() const override {
    boost::system::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    return ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  std::string_view listener_name() const override { return "mqtt"; }

 private:
  TcpSocket socket_;
};

}  // namespace

std::unique_ptr<ByteStream> make_tcp_stream(TcpSocket socket) {
  return std::make_unique<TcpStream>(std::move(socket));
}

}  // namespace starling::broker
