#include "cluster/routing/retained_sync.h"

#include <set>

#include "broker/stored_message.h"
#include "cluster/routing/peer_link.h"
#include "cluster/rpc/cluster_secret.h"
#include "cluster/rpc/peer_channel.h"

namespace starling::cluster {

RetainedSync::RetainedSync(Membership& membership, RetainedVersions& versions, std::string secret,
                           std::shared_ptr<grpc::ChannelCredentials> credentials,
                           spdlog::logger& log)
    : membership_(membership), versions_(versions), secret_(std::move(secret)),
      credentials_(std::move(credentials)),
      log_(log) {}

RetainedSync::~RetainedSync() { stop(); }

void RetainedSync::start(broker::SessionRegistry& sessions, std::function<void()> then) {
  sessions_ = &sessions;
  then_ = std::move(then);
  thread_ = std::thread([this] { run(); });
}

void RetainedSync::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool RetainedSync::wait(std::chrono::milliseconds pause) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, pause, [this] { return stopping_; });
}

void RetainedSync::run() {
  if (pull() && then_) then_();
}

bool RetainedSync::pull() {
  while (wait(std::chrono::milliseconds(100))) {
    if (!membership_.joined()) continue;
    const std::vector<Member> peers = membership_.live_peers();
    if (peers.empty()) {
      synced_ = true;  // alone: what is here is all there is
      return true;
    }
    for (const auto& peer : peers) {
      if (pull_from(peer.node_id, peer.address)) {
        synced_ = true;
        return true;
      }
    }
    if (!wait(std::chrono::milliseconds(400))) return false;
  }
  return false;
}

bool RetainedSync::pull_from(const std::string& node_id, const std::string& address) {
  auto stub = v1::Routing::NewStub(peer_channel(address, credentials_));
  // Stored here before this node says it is synced.
  struct Outstanding {
    std::mutex mu;
    std::condition_variable done;
    size_t left = 0;
    bool ok = true;
  };
  auto outstanding = std::make_shared<Outstanding>();
  const auto apply = [&](const broker::MessagePtr& message) {
    {
      std::lock_guard lock(outstanding->mu);
      ++outstanding->left;
    }
    sessions_->retain_forwarded(message, [outstanding](bool ok) {
      std::lock_guard lock(outstanding->mu);
      outstanding->ok = outstanding->ok && ok;
      if (--outstanding->left == 0) outstanding->done.notify_all();
    });
  };

  std::set<std::string, std::less<>> theirs;
  size_t taken = 0;
  std::string after;
  for (bool more = true; more;) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    attach_secret(context, secret_);
    v1::RetainedPageRequest request;
    request.set_after(after);
    request.set_limit(1000);
    v1::RetainedPage page;
    const auto status = stub->RetainedSnapshot(&context, request, &page);
    if (!status.ok()) {
      log_.info("cluster: retained messages from {} not available: {}", node_id, status.error_message());
      return false;
    }
    const broker::ClockPair now;
    for (const auto& f : page.messages()) {
      theirs.insert(f.topic());
      after = f.topic();
      auto message = from_forwarded(f, now);
      if (!message) continue;
      if (versions_.accept(f.topic(), RetainedVersion{f.retained().hlc(), f.retained().origin()},
                           [&] { apply(message); })) {
        ++taken;
      }
    }
    more = page.more() && page.messages_size() > 0;
  }
  // Cleared on the others while this node was away: clear it here too,
  // unless a write that reached this node since is newer.
  size_t cleared = 0;
  const broker::ClockPair now;
  for (const auto& mine : sessions_->retained().matching("#", now.steady)) {
    if (theirs.contains(mine->topic) || versions_.version_of(mine->topic)) continue;
    apply(broker::from_stored(storage::StoredMessage{mine->topic, {}, 0, true, {}, 0}, now, /*from_peer=*/true));
    ++cleared;
  }
  std::unique_lock lock(outstanding->mu);
  outstanding->done.wait_for(lock, std::chrono::seconds(30), [&] { return outstanding->left == 0; });
  if (outstanding->left != 0 || !outstanding->ok) {
    log_.warn("cluster: retained messages from {} could not all be stored", node_id);
    return false;
  }
  log_.info("cluster: retained messages synced from {}: {} taken, {} cleared, {} there", node_id, taken, cleared,
            theirs.size());
  return true;
}

}  // namespace starling::cluster
