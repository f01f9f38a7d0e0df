// The store's copy of the retained messages (Column::retained): the write
// that goes with each RetainedStore::set, and the load at start-up.
#pragma once

#include <cstddef>

#include "broker/routing/retained_store.h"
#include "broker/stored_message.h"
#include "storage/kv_store.h"

namespace starling::broker {

// Adds to `batch`: the message under its topic, or the topic's erasure for
// an empty payload [MQTT-3.3.1-6].
void put_retained(storage::WriteBatch& batch, const Message& message, const ClockPair& now);

struct RetainedLoad {
  size_t loaded = 0;
  size_t expired = 0;  // dropped, and erased from the store
};
// Fills `retained` from the store. A record that does not decode is an error
// (corruption): the node must not start on half its data.
storage::Result<RetainedLoad> load_retained(storage::KvStore& store, RetainedStore& retained, const ClockPair& now);

}  // namespace starling::broker
