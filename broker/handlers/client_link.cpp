#include "broker/handlers/client_link.h"

#include "storage/group_commit.h"

namespace starling::broker {

MessagePtr ClientState::will_message(Clock::time_point now) const {
  if (!will || !session) return nullptr;
  return make_message(std::string(will->topic), will->payload, will->qos, will->retain, will->properties, session->id(),
                      will_backing, now);
}

std::optional<WillRecord> ClientState::will_record(Clock::time_point now) const {
  if (!will) return std::nullopt;
  return WillRecord{will_message(now), will_delay};
}

void reply_after(ClientLink& link, mqtt::Packet packet, storage::WriteBatch write, ClientLink::After after) {
  storage::GroupCommit* commits = link.broker().commits;
  if (write.empty() || commits == nullptr) return link.reply(std::move(packet), std::move(after));
  commits->submit(std::move(write), link.hold_reply(std::move(packet), std::move(after)));
}

void store(ClientLink& link, storage::WriteBatch write) {
  storage::GroupCommit* commits = link.broker().commits;
  if (!write.empty() && commits != nullptr) commits->submit(std::move(write), nullptr);
}

void forget_stored(ClientLink& link, std::span<const uint64_t> sequences, bool released) {
  storage::WriteBatch erase;
  for (uint64_t sequence : sequences) {
    if (sequence != 0) erase_queued(erase, *link.state().session, sequence, released);
  }
  store(link, std::move(erase));
}

void reply_when_recorded(ClientLink& link, mqtt::Packet reply, ClientLink::After after) {
  ClientState& st = link.state();
  if (!st.session->persistent() || link.broker().commits == nullptr) return link.reply(std::move(reply), std::move(after));
  const auto will = st.will_record(Clock::now());
  link.broker().sessions.write_session(st.session, will ? &*will : nullptr, {},
                                       link.hold_reply(std::move(reply), std::move(after)));
}

}  // namespace starling::broker
