// Plain TCP transport.
#include <vector>

#include <unistd.h>

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

  bool can_move() const override { return true; }
  Released release_worker() override {
    boost::system::error_code ec;
    Released r;
    r.protocol = socket_.local_endpoint(ec).protocol();
    r.fd = socket_.release(ec);  // cancels the readable wait
    if (ec) r.fd = -1;
    return r;
  }
  boost::system::error_code attach_worker(asio::io_context& worker, Released r) override {
    if (r.fd < 0) return asio::error::bad_descriptor;
    // The old socket object is closed and empty: replacing it here touches
    // nothing of the old worker's reactor.
    socket_ = TcpSocket(worker.get_executor());
    boost::system::error_code ec;
    socket_.assign(r.protocol, r.fd, ec);
    if (ec) {
      ::close(r.fd);
      return ec;
    }
    socket_.non_blocking(true, ec);
    return ec;
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
