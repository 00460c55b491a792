#include "phalanx/helpers/parallel.hpp"

#include <utility>

namespace phalanx {

namespace {
// One runner per thread: the lender's. A plugin running on a gradient thread sees none, and the lender's own
// is put aside while its blocks run (the lender runs some of them itself), so a block runner is never asked to
// run blocks from inside one of its own blocks: a kernel that calls another one inside its blocks (a
// finiteness check inside a block of sums) runs the inner one in place.
thread_local BlockRunner lent_runner;

// Puts this thread's runner aside while its blocks run, and back afterwards (also when a block throws).
class RunnerAside {
 public:
  RunnerAside() : runner_(std::exchange(lent_runner, BlockRunner())) {}
  ~RunnerAside() { lent_runner = std::move(runner_); }
  RunnerAside(const RunnerAside&) = delete;
  RunnerAside& operator=(const RunnerAside&) = delete;
  const BlockRunner& runner() const { return runner_; }

 private:
  BlockRunner runner_;
};

}  // namespace

void for_each_block(std::int64_t count, const std::function<void(std::int64_t)>& block) {
  if (lent_runner && count > 1) {
    const RunnerAside aside;
    aside.runner()(count, block);
    return;
  }
  for (std::int64_t i = 0; i < count; ++i) block(i);
}

LentThreads::LentThreads(BlockRunner runner) : previous_(std::exchange(lent_runner, std::move(runner))) {}

LentThreads::~LentThreads() { lent_runner = std::move(previous_); }

}  // namespace phalanx
