#include "broker/net/deadline_wheel.h"

#include <algorithm>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>

namespace starling::broker {

namespace asio = boost::asio;

DeadlineWheel::DeadlineWheel(asio::execution_context& context, Clock::duration tick, size_t slots)
    : asio::execution_context::service(context), tick_(tick), epoch_(Clock::now()), slots_(std::max<size_t>(slots, 1)) {}

DeadlineWheel::~DeadlineWheel() = default;

DeadlineWheel& DeadlineWheel::of(const asio::any_io_executor& executor) {
  auto& wheel = asio::use_service<DeadlineWheel>(asio::query(executor, asio::execution::context));
  if (!wheel.timer_) wheel.timer_.emplace(executor);  // on the worker's thread, as everything here
  return wheel;
}

void DeadlineWheel::shutdown() {
  // The timer goes now, while its own service exists: that service came after
  // this one, so it is destroyed first.
  timer_.reset();
  timer_running_ = false;
  for (auto& slot : slots_) slot.clear();  // unlinks: entries may outlive the wheel
}

uint64_t DeadlineWheel::tick_of(Clock::time_point t) const {
  if (t <= epoch_) return 0;
  return static_cast<uint64_t>((t - epoch_) / tick_);
}

void DeadlineWheel::schedule(Entry& entry, Clock::time_point due) {
  entry.hook_.unlink();
  entry.due_ = due;
  // An idle wheel's cursor has fallen behind the clock: bring it forward.
  // Never while ticking, when it walks the slots it has yet to fire.
  if (!timer_running_) next_tick_ = std::max(next_tick_, tick_of(Clock::now()));
  // The first tick at or after `due`, and never one already passed.
  uint64_t tick = tick_of(due);
  if (epoch_ + tick * tick_ < due) ++tick;
  tick = std::max(tick, next_tick_);
  slots_[tick % slots_.size()].push_back(entry);
  start_timer();
}

void DeadlineWheel::start_timer() {
  if (timer_running_ || !timer_) return;  // no timer: shut down
  timer_running_ = true;
  timer_->expires_at(epoch_ + next_tick_ * tick_);
  timer_->async_wait([this](boost::system::error_code ec) {
    if (ec) {
      timer_running_ = false;
      return;
    }
    on_tick();  // timer_running_ stays set while it runs
  });
}

void DeadlineWheel::on_tick() {
  const auto now = Clock::now();
  const uint64_t now_tick = tick_of(now);
  // After a long stall every slot is visited once, not every missed tick.
  if (now_tick >= next_tick_ + slots_.size()) next_tick_ = now_tick - slots_.size() + 1;
  while (next_tick_ <= now_tick) {
    List due;
    due.swap(slots_[next_tick_ % slots_.size()]);
    ++next_tick_;
    while (!due.empty()) {
      Entry& entry = due.front();
      due.pop_front();
      if (entry.due_ <= now) {
        entry.on_deadline();  // may schedule it (or others) again
      } else {
        schedule(entry, entry.due_);  // a later round
      }
    }
  }
  timer_running_ = false;
  if (std::any_of(slots_.begin(), slots_.end(), [](const List& l) { return !l.empty(); })) start_timer();
}

}  // namespace starling::broker
