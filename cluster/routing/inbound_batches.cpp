#include "cluster/routing/inbound_batches.h"

#include <iterator>

namespace starling::cluster {
namespace {

// A sender keeps at most a handful of batches unanswered; this many recent
// outcomes per link cover any repeat by far.
constexpr size_t kKeptOutcomes = 256;
constexpr auto kForgetLinkAfter = std::chrono::minutes(1);

}  // namespace

void BatchOutcome::add_part() {
  std::lock_guard lock(mu_);
  ++parts_;
}

void BatchOutcome::refuse(uint32_t index) {
  std::lock_guard lock(mu_);
  refused_.push_back(index);
}

void BatchOutcome::part_done(bool ok, uint32_t index) {
  std::unique_lock lock(mu_);
  if (!ok) refused_.push_back(index);
  finish_part(lock);
}

void BatchOutcome::when_complete(Answer answer) {
  std::unique_lock lock(mu_);
  if (answered_) {
    const auto refused = refused_;
    lock.unlock();
    answer(refused);
    return;
  }
  answers_.push_back(std::move(answer));
}

void BatchOutcome::seal() {
  std::unique_lock lock(mu_);
  finish_part(lock);
}

void BatchOutcome::finish_part(std::unique_lock<std::mutex>& lock) {
  if (--parts_ > 0) return;
  answered_ = true;
  const auto refused = refused_;
  auto answers = std::move(answers_);
  answers_.clear();
  lock.unlock();
  for (auto& a : answers) a(refused);
}

InboundBatches::Received InboundBatches::receive(uint64_t link_id, uint64_t sequence) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  std::erase_if(links_, [&](const auto& l) { return l.first != link_id && now - l.second.last_used > kForgetLinkAfter; });
  Link& link = links_[link_id];
  link.last_used = now;
  if (sequence <= link.highest) {
    const auto it = link.recent.find(sequence);
    if (it != link.recent.end()) return {it->second, false};
    // Older than anything kept: answered long ago.
    auto done = std::make_shared<BatchOutcome>();
    done->seal();
    return {done, false};
  }
  link.highest = sequence;
  auto outcome = std::make_shared<BatchOutcome>();
  link.recent.emplace(sequence, outcome);
  while (link.recent.size() > kKeptOutcomes) link.recent.erase(link.recent.begin());
  return {outcome, true};
}

}  // namespace starling::cluster
