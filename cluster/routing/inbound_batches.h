// Which forwarded batches this node already took, per sending link, so that a
// batch sent again on a new stream (the old one broke before its answer came
// back) is answered when the first copy is done, not delivered twice.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

namespace starling::cluster {

// The outcome of one batch: complete once every part of it (each message's
// delivery, each retained write) reported.
class BatchOutcome {
 public:
  using Answer = std::function<void(const std::vector<uint32_t>& refused)>;

  // Parts are added while the batch is taken apart; seal() says there are
  // no more.
  void add_part();
  void seal();
  // `refuse`: the message at `index` was not taken.
  void part_done(bool ok, uint32_t index);
  void refuse(uint32_t index);
  // `answer` runs once the batch is complete: now, if it is.
  void when_complete(Answer answer);

 private:
  std::mutex mu_;
  size_t parts_ = 1;  // ended by seal()
  bool answered_ = false;
  std::vector<uint32_t> refused_;
  std::vector<Answer> answers_;
  void finish_part(std::unique_lock<std::mutex>& lock);
};

class InboundBatches {
 public:
  struct Received {
    std::shared_ptr<BatchOutcome> outcome;
    bool fresh;  // deliver it; false: a repeat, only wait for its outcome
  };
  // Sequences count up from 1 in each link; a link sends again only what was
  // not answered, in order, so anything at or below the highest seen is a
  // repeat. Links quiet for a minute are forgotten.
  Received receive(uint64_t link_id, uint64_t sequence);

 private:
  struct Link {
    uint64_t highest = 0;
    std::map<uint64_t, std::shared_ptr<BatchOutcome>> recent;
    std::chrono::steady_clock::time_point last_used;
  };
  std::mutex mu_;
  std::map<uint64_t, Link> links_;
};

}  // namespace starling::cluster
