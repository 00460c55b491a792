#include "phalanx/helpers/parallel.hpp"

#include <utility>

namespace phalanx {

namespace {
// One runner per thread: the lender's. A plugin running on a gradient thread sees none, so a block runner is
// never asked to run blocks from inside one of its own blocks.
thread_local BlockRunner lent_runner;
}  // namespace

void for_each_block(std::int64_t count, const std::function<void(std::int64_t)>& block) {
  if (lent_runner && count > 1) {
    lent_runner(count, block);
    return;
  }
  for (std::int64_t i = 0; i < count; ++i) block(i);
}

LentThreads::LentThreads(BlockRunner runner) : previous_(std::exchange(lent_runner, std::move(runner))) {}

LentThreads::~LentThreads() { lent_runner = std::move(previous_); }

}  // namespace phalanx
