#include "broker/net/deadline_wheel.h"

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

namespace starling::broker {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

constexpr auto kTick = milliseconds(10);
constexpr size_t kSlots = 64;  // a 640 ms span

struct Probe final : DeadlineWheel::Entry {
  std::vector<Clock::time_point> fired;
  std::function<void(Probe&)> then;
  void on_deadline() override {
    fired.push_back(Clock::now());
    if (then) then(*this);
  }
};

class DeadlineWheelTest : public ::testing::Test {
 protected:
  DeadlineWheelTest() : wheel(make()) {}

  DeadlineWheel& make() {
    asio::make_service<DeadlineWheel>(io, kTick, kSlots);
    return DeadlineWheel::of(io.get_executor());
  }

  // Runs until nothing is scheduled: the wheel's timer stops by itself.
  void run() { io.run_for(std::chrono::seconds(5)); }

  asio::io_context io;
  DeadlineWheel& wheel;
};

TEST_F(DeadlineWheelTest, FiresAtTheDeadlineNotBeforeAndAtMostATickLate) {
  Probe p;
  const auto start = Clock::now();
  wheel.schedule(p, start + milliseconds(45));
  run();
  ASSERT_EQ(p.fired.size(), 1u);
  EXPECT_GE(p.fired[0] - start, milliseconds(45));
  // A tick late at most, plus slack for a loaded machine; far less than a
  // round of the wheel.
  EXPECT_LT(p.fired[0] - start, milliseconds(45) + kTick + milliseconds(150));
}

TEST_F(DeadlineWheelTest, ADeadlineBeyondTheSpanWaitsForItsRound) {
  Probe p;
  const auto start = Clock::now();
  wheel.schedule(p, start + milliseconds(1500));  // passes its slot twice first
  run();
  ASSERT_EQ(p.fired.size(), 1u);
  EXPECT_GE(p.fired[0] - start, milliseconds(1500));
}

TEST_F(DeadlineWheelTest, EntriesFireInDeadlineOrder) {
  Probe a, b, c;
  const auto start = Clock::now();
  wheel.schedule(c, start + milliseconds(150));
  wheel.schedule(a, start + milliseconds(20));
  wheel.schedule(b, start + milliseconds(70));
  run();
  ASSERT_EQ(a.fired.size(), 1u);
  ASSERT_EQ(b.fired.size(), 1u);
  ASSERT_EQ(c.fired.size(), 1u);
  EXPECT_LT(a.fired[0], b.fired[0]);
  EXPECT_LT(b.fired[0], c.fired[0]);
}

TEST_F(DeadlineWheelTest, CancelledOrDestroyedEntriesNeverFire) {
  Probe kept, cancelled;
  const auto start = Clock::now();
  wheel.schedule(kept, start + milliseconds(60));
  wheel.schedule(cancelled, start + milliseconds(30));
  DeadlineWheel::cancel(cancelled);
  {
    Probe gone;
    wheel.schedule(gone, start + milliseconds(30));
  }  // unlinked by its destructor
  run();
  EXPECT_EQ(kept.fired.size(), 1u);
  EXPECT_TRUE(cancelled.fired.empty());
}

TEST_F(DeadlineWheelTest, SchedulingAgainMovesTheDeadline) {
  Probe p;
  const auto start = Clock::now();
  wheel.schedule(p, start + milliseconds(30));
  wheel.schedule(p, start + milliseconds(120));
  run();
  ASSERT_EQ(p.fired.size(), 1u);
  EXPECT_GE(p.fired[0] - start, milliseconds(120));
}

TEST_F(DeadlineWheelTest, AnEntryMayScheduleItselfFromItsDeadline) {
  Probe p;
  p.then = [this](Probe& self) {
    if (self.fired.size() < 3) wheel.schedule(self, Clock::now() + milliseconds(25));
  };
  const auto start = Clock::now();
  wheel.schedule(p, start + milliseconds(25));
  run();
  ASSERT_EQ(p.fired.size(), 3u);
  EXPECT_GE(p.fired[2] - start, milliseconds(75));
}

// A tick that fires late walks every slot it missed, even when an entry it
// fires schedules again meanwhile (a keep-alive check re-arming itself).
TEST_F(DeadlineWheelTest, ALateTickFiresEverySlotItMissed) {
  Probe first, second;
  first.then = [this](Probe& self) { wheel.schedule(self, Clock::now() + milliseconds(500)); };
  const auto start = Clock::now();
  wheel.schedule(first, start + milliseconds(15));  // slot 2
  wheel.schedule(second, start + milliseconds(45));  // slot 5: between the two on the late walk
  std::this_thread::sleep_for(milliseconds(150));  // the worker was busy: both are overdue
  io.run_for(milliseconds(100));
  ASSERT_EQ(first.fired.size(), 1u);
  ASSERT_EQ(second.fired.size(), 1u) << "a missed slot was skipped";
  // In the same late walk, not a round of the wheel (640 ms) later.
  EXPECT_LT(second.fired[0] - first.fired[0], milliseconds(30));
}

TEST_F(DeadlineWheelTest, ADeadlineAlreadyPassedFiresOnTheNextTick) {
  Probe p;
  wheel.schedule(p, Clock::now() - milliseconds(500));
  run();
  EXPECT_EQ(p.fired.size(), 1u);
}

TEST_F(DeadlineWheelTest, AfterAnIdleSpellTheWheelStartsAgain) {
  Probe p;
  wheel.schedule(p, Clock::now() + milliseconds(20));
  run();
  ASSERT_EQ(p.fired.size(), 1u);
  io.restart();
  std::this_thread::sleep_for(milliseconds(200));  // the wheel's cursor falls behind the clock
  const auto start = Clock::now();
  wheel.schedule(p, start + milliseconds(40));
  run();
  ASSERT_EQ(p.fired.size(), 2u);
  EXPECT_GE(p.fired[1] - start, milliseconds(40));
}

}  // namespace
}  // namespace starling::broker
