// A fixed set of threads that runs the simulated workers' gradients side by side. Tasks are numbered; each is
// run exactly once, by whichever thread is free, and is told which thread (slot) runs it so it can use that
// thread's own model replica. Results must be written to per-task places: the order in which tasks finish is
// not fixed, so anything that depends on it (sums, generator draws) belongs before or after run().
//
// A round calls run() several times in a row with little work each (the gradients, then the attack's, the
// aggregator's and the checks' column blocks): a thread that has just finished watches a short while for the
// next call before it sleeps, and the caller watches a short while for the last task before it sleeps, so
// neither waits for a wake-up through the kernel between two calls.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace phalanx::core {

class WorkerPool {
 public:
  /// `threads` >= 1 slots; slot 0 is the calling thread, so one slot starts no thread at all.
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int slots() const { return static_cast<int>(threads_.size()) + 1; }
  /// Runs task(i, slot) for i = 0 .. count-1 and returns when all are done. The first exception a task throws
  /// is rethrown here (the other tasks still run to completion first).
  void run(std::int64_t count, const std::function<void(std::int64_t task, int slot)>& task);

 private:
  void serve(int slot);
  void work(int slot);

  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(std::int64_t, int)>* task_ = nullptr;
  std::int64_t count_ = 0, next_ = 0;
  // Changed under mutex_; atomic so that a thread may watch them without it before it sleeps.
  std::atomic<std::int64_t> finished_{0};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> stopping_{false};
  std::exception_ptr error_;
};

/// The number of gradient threads for `training.threads` (0: one per hardware thread), never more than the
/// number of simulated workers.
int gradient_threads(std::int64_t configured, std::int64_t workers);

}  // namespace phalanx::core
