#include "phalanx/core/engine/worker_pool.hpp"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "phalanx/core/engine/threads.hpp"

namespace phalanx::core {

namespace {
// How long a thread watches for the next call (or the caller for the last task) before it sleeps: longer than
// the serial work between two calls of a round, short next to a round. Each wake-up through the kernel delays
// the round's critical path (docs/BENCHMARKS.md, "Watching for the next call": ALIE's attack took a fifth less).
constexpr std::chrono::microseconds kSpin{200};

// True once done() holds, watching for at most kSpin. The CPU is told it is a spin loop (pause), and other
// threads get the core now and then (yield), so an oversubscribed machine is not starved.
template <typename Done>
bool spin_until(Done done) {
  const auto stop = std::chrono::steady_clock::now() + kSpin;
  for (int i = 1;; ++i) {
    if (done()) return true;
#if defined(__x86_64__)
    _mm_pause();
#endif
    if (i % 64 == 0) {
      if (std::chrono::steady_clock::now() > stop) return done();
      std::this_thread::yield();
    }
  }
}
}  // namespace

WorkerPool::WorkerPool(int threads) {
  for (int slot = 1; slot < std::max(threads, 1); ++slot) threads_.emplace_back([this, slot] { serve(slot); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::run(std::int64_t count, const std::function<void(std::int64_t, int)>& task) {
  if (threads_.empty() || count <= 1) {  // nothing to share: no locking, no wake-ups
    for (std::int64_t i = 0; i < count; ++i) task(i, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &task;
    count_ = count;
    next_ = finished_ = 0;
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  work(0);
  spin_until([&] { return finished_.load(std::memory_order_acquire) == count; });
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return finished_ == count_; });
  task_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

void WorkerPool::serve(int slot) {
  // Each thread computes with one intra-op thread: the pool is the parallelism, and a gradient computed
  // with one thread is the same whichever thread computes it.
  set_compute_threads(1);
  std::uint64_t seen = 0;
  for (;;) {
    spin_until([&] {
      return stopping_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen;
    });
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    work(slot);
  }
}

void WorkerPool::work(int slot) {
  for (;;) {
    std::int64_t i;
    const std::function<void(std::int64_t, int)>* task;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!task_ || next_ >= count_) return;
      i = next_++;
      task = task_;
    }
    try {
      (*task)(i, slot);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (++finished_ == count_) done_.notify_all();
  }
}

int gradient_threads(std::int64_t configured, std::int64_t workers) {
  std::int64_t n = configured > 0 ? configured : static_cast<std::int64_t>(std::thread::hardware_concurrency());
  return static_cast<int>(std::clamp<std::int64_t>(n, 1, std::max<std::int64_t>(workers, 1)));
}

}  // namespace phalanx::core
