// $SYS/broker/... statistics, published periodically as retained messages,
// as Mosquitto does, so a new subscriber sees the latest values at once.
#pragma once

#include "broker/broker_context.h"

namespace starling::broker {

struct SysSnapshot {
  Clock::time_point started;
  const Stats& stats;
  size_t sessions;
  size_t subscriptions;
  size_t retained;
};

void publish_sys_topics(const SysSnapshot& snapshot, SessionRegistry& sessions, Clock::time_point now);

}  // namespace starling::broker
