// One callback for several parts answering: `done` runs once all `parts`
// calls came, with ok only when every part was ok. Any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <utility>

namespace starling {

inline std::function<void(bool)> count_down(size_t parts, std::function<void(bool)> done) {
  struct State {
    std::atomic<size_t> left;
    std::atomic<bool> ok{true};
    std::function<void(bool)> done;
  };
  auto state = std::make_shared<State>();
  state->left = parts;
  state->done = std::move(done);
  return [state](bool ok) {
    if (!ok) state->ok = false;
    if (state->left.fetch_sub(1) == 1 && state->done) state->done(state->ok.load());
  };
}

}  // namespace starling
