#include "broker/log_format.h"

#include <gtest/gtest.h>

#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

namespace starling::broker {
namespace {

TEST(JsonLogFormat, OneJsonObjectPerLineWithTheMessageEscaped) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  spdlog::logger log("starling", sink);
  log.set_formatter(make_json_log_formatter());
  log.warn("client {} said \"hi\"\\n\tand {}", "c1", std::string("\x01"));
  log.info("second");

  std::istringstream lines(out.str());
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  const auto first = nlohmann::json::parse(line);
  EXPECT_EQ(first["level"], "warning");
  EXPECT_EQ(first["logger"], "starling");
  EXPECT_EQ(first["message"], "client c1 said \"hi\"\\n\tand \x01");
  const std::string time = first["time"];
  EXPECT_EQ(time.size(), 24u) << time;  // 2026-11-26T11:00:00.123Z
  EXPECT_EQ(time.back(), 'Z');
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_EQ(nlohmann::json::parse(line)["message"], "second");
  EXPECT_FALSE(std::getline(lines, line));
}

}  // namespace
}  // namespace starling::broker
