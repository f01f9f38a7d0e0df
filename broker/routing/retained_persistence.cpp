#include "broker/routing/retained_persistence.h"

#include <string>
#include <vector>

namespace starling::broker {

void put_retained(storage::WriteBatch& batch, const Message& message, const ClockPair& now) {
  if (message.payload.empty()) {
    batch.erase(storage::Column::retained, storage::retained_key(message.topic));
  } else {
    batch.put(storage::Column::retained, storage::retained_key(message.topic),
              storage::encode(to_stored(message, now)));
  }
}

storage::Result<RetainedLoad> load_retained(storage::KvStore& store, RetainedStore& retained, const ClockPair& now) {
  RetainedLoad load;
  std::vector<std::string> expired;
  std::optional<storage::StoreError> damaged;
  auto status = store.scan_prefix(storage::Column::retained, "", [&](std::string_view key, std::string_view value) {
    auto stored = storage::decode_message(value);
    MessagePtr message = stored ? from_stored(*stored, now) : nullptr;
    if (!message) {
      damaged = stored ? storage::StoreError{storage::StoreErrc::corruption, "damaged retained message properties"}
                       : stored.error();
      damaged->message += " (retained topic '" + std::string(key) + "')";
      return false;
    }
    if (message->expired(now.steady)) {
      expired.emplace_back(key);
      return true;
    }
    retained.set(message);
    ++load.loaded;
    return true;
  });
  if (!status) return status.error();
  if (damaged) return *damaged;
  if (!expired.empty()) {
    storage::WriteBatch erase;
    for (auto& key : expired) erase.erase(storage::Column::retained, std::move(key));
    if (auto s = store.write(erase); !s) return s.error();
    load.expired = expired.size();
  }
  return load;
}

}  // namespace starling::broker
