#include "broker/net/listen_address.h"

#include <gtest/gtest.h>

#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/io_context.hpp>

namespace starling::broker {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

TEST(ListenAddress, PortZeroGetsADistinctFreePortEachTime) {
  asio::io_context io;
  ListenResult first = listen_on(io.get_executor(), HostPort{"127.0.0.1", 0});
  ListenResult second = listen_on(io.get_executor(), HostPort{"127.0.0.1", 0});
  ASSERT_TRUE(first.ok()) << first.error;
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_NE(first.port(), 0);
  EXPECT_NE(second.port(), 0);
  EXPECT_NE(first.port(), second.port());
  EXPECT_EQ(first.endpoint.address().to_string(), "127.0.0.1");
  EXPECT_EQ(first.acceptor->local_endpoint().port(), first.port());
}

TEST(ListenAddress, AcceptsAConnection) {
  asio::io_context io;
  ListenResult listening = listen_on(io.get_executor(), HostPort{"127.0.0.1", 0});
  ASSERT_TRUE(listening.ok()) << listening.error;

  tcp::socket client{io};
  boost::system::error_code error;
  client.connect(tcp::endpoint{asio::ip::make_address("127.0.0.1"), listening.port()}, error);
  ASSERT_FALSE(error) << error.message();

  tcp::socket server = listening.acceptor->accept(error);
  ASSERT_FALSE(error) << error.message();
  EXPECT_EQ(server.remote_endpoint().port(), client.local_endpoint().port());

  asio::write(client, asio::buffer("ping", 4), error);
  ASSERT_FALSE(error);
  char received[4] = {};
  asio::read(server, asio::buffer(received), error);
  ASSERT_FALSE(error);
  EXPECT_EQ(std::string(received, 4), "ping");
}

TEST(ListenAddress, ResolvesHostNames) {
  asio::io_context io;
  ListenResult listening = listen_on(io.get_executor(), HostPort{"localhost", 0});
  ASSERT_TRUE(listening.ok()) << listening.error;
  EXPECT_TRUE(listening.endpoint.address().is_loopback());
}

TEST(ListenAddress, PortInUseIsAnError) {
  asio::io_context io;
  ListenResult first = listen_on(io.get_executor(), HostPort{"127.0.0.1", 0});
  ASSERT_TRUE(first.ok()) << first.error;
  ListenResult second = listen_on(io.get_executor(), HostPort{"127.0.0.1", first.port()});
  EXPECT_FALSE(second.ok());
  EXPECT_NE(second.error.find("127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << second.error;
}

}  // namespace
}  // namespace starling::broker
