#include "broker/handlers/client_link.h"

#include "broker/cluster_link.h"
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

ClientLink::Release ReplyGate::part() {
  std::lock_guard lock(mu_);
  ++pending_;
  return [self = shared_from_this()](bool ok) { self->done_one(ok); };
}

ClientLink::StoreDone ReplyGate::store_part(BrokerContext& broker) {
  return [done = part(), &broker](const storage::Status& status) {
    broker.note_store_write(status);
    done(status.ok());
  };
}

void ReplyGate::submit(ClientLink& link, storage::WriteBatch write) {
  storage::GroupCommit* commits = link.broker().commits;
  if (write.empty() || commits == nullptr) return;
  commits->submit(std::move(write), store_part(link.broker()));
}

void ReplyGate::hold(ClientLink& link, mqtt::Packet packet, ClientLink::After after) {
  ClientLink::Release release;
  bool ok = true;
  {
    std::lock_guard lock(mu_);
    if (pending_ > 0) {
      release_ = link.hold_reply_until(std::move(packet), std::move(after));
      return;
    }
    ok = ok_;
  }
  if (ok) return link.reply(std::move(packet), std::move(after));
  link.hold_reply_until(std::move(packet), std::move(after))(false);  // refused, in order
}

void ReplyGate::done_one(bool ok) {
  ClientLink::Release release;
  bool all_ok = true;
  {
    std::lock_guard lock(mu_);
    ok_ = ok_ && ok;
    if (--pending_ > 0 || !release_) return;
    release = std::move(release_);
    all_ok = ok_;
  }
  release(all_ok);
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
  auto gate = ReplyGate::make();
  record_session(link, *gate);
  gate->hold(link, std::move(reply), std::move(after));
}

SessionReplication* replication_of(ClientLink& link) {
  ClusterLink* cluster = link.broker().cluster;
  SessionReplication* replication = cluster != nullptr ? cluster->replication() : nullptr;
  const auto& session = link.state().session;
  return replication != nullptr && session && session->expiry_interval() > 0 ? replication : nullptr;
}

void record_session(ClientLink& link, ReplyGate& gate, storage::WriteBatch batch) {
  ClientState& st = link.state();
  if (auto* replication = replication_of(link)) replication->recorded(st.session, gate.part());
  if (!st.session->persistent() || link.broker().commits == nullptr) return;
  const auto will = st.will_record(Clock::now());
  link.broker().sessions.write_session(st.session, will ? &*will : nullptr, std::move(batch),
                                       gate.store_part(link.broker()));
}

}  // namespace starling::broker
