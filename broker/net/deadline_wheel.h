// One timer per worker for the deadlines of all its connections (CONNECT in
// time, keep alive, the grace of a close), instead of a timer and a pending
// wait operation per connection: an idle connection then costs a list hook.
//
// A timing wheel of slots a tick apart (kTick, kSlots unless made with
// make_service). A deadline beyond the wheel's span sits in the slot it maps
// to and is passed over until its round comes. Deadlines fire up to one tick
// late. The wheel's timer runs only while something is scheduled.
//
// Threads: an entry is scheduled, cancelled and fired on the worker that runs
// the wheel's io_context only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/intrusive/list.hpp>

#include "broker/message.h"

namespace starling::broker {

class DeadlineWheel final : public boost::asio::execution_context::service {
 public:
  using key_type = DeadlineWheel;
  static inline boost::asio::execution_context::id id;

  static constexpr auto kTick = std::chrono::milliseconds(250);
  static constexpr size_t kSlots = 256;  // 64 s before a deadline is passed over

  // What has a deadline: unlinked from its slot when cancelled or destroyed.
  class Entry {
   public:
    // The deadline passed. The entry is no longer scheduled.
    virtual void on_deadline() = 0;

   protected:
    Entry() = default;
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    ~Entry() = default;

   private:
    friend class DeadlineWheel;
    using Hook = boost::intrusive::list_member_hook<boost::intrusive::link_mode<boost::intrusive::auto_unlink>>;
    Hook hook_;
    Clock::time_point due_{};
  };

  explicit DeadlineWheel(boost::asio::execution_context& context)
      : DeadlineWheel(context, kTick, kSlots) {}
  DeadlineWheel(boost::asio::execution_context& context, Clock::duration tick, size_t slots);
  ~DeadlineWheel() override;

  // The wheel of the worker whose io_context runs `executor`.
  static DeadlineWheel& of(const boost::asio::any_io_executor& executor);

  // (Re)schedules `entry` for `due`.
  void schedule(Entry& entry, Clock::time_point due);
  static void cancel(Entry& entry) { entry.hook_.unlink(); }

 private:
  using List = boost::intrusive::list<Entry, boost::intrusive::member_hook<Entry, Entry::Hook, &Entry::hook_>,
                                      boost::intrusive::constant_time_size<false>>;

  void shutdown() override;
  uint64_t tick_of(Clock::time_point t) const;
  void start_timer();
  void on_tick();

  std::optional<boost::asio::steady_timer> timer_;  // made by the first of()
  const Clock::duration tick_;
  const Clock::time_point epoch_;
  uint64_t next_tick_ = 0;  // the next slot to fire
  bool timer_running_ = false;  // armed, or firing (on_tick)
  std::vector<List> slots_;
};

}  // namespace starling::broker
