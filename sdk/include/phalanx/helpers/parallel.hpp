// Independent blocks of work on the engine's threads. While a plugin runs on the server's thread (an attack's
// craft, an aggregator's aggregate), the simulated engines lend it their gradient threads, which are idle
// then. A kernel whose blocks do not depend on one another (a coordinate-wise standard deviation over blocks
// of columns) gives the same bits however its blocks are shared, so it may hand them to for_each_block; sums
// across blocks belong after it, in block order.
#pragma once

#include <cstdint>
#include <functional>

#include "phalanx/export.hpp"

namespace phalanx {

/// Runs block(i) for i = 0 .. count-1, each exactly once and in any order: on the threads lent to the calling
/// thread when there are some, else one after another here (also when called from inside a block). Rethrows the
/// first exception a block throws.
PHALANX_EXPORT void for_each_block(std::int64_t count, const std::function<void(std::int64_t)>& block);

/// Runs `count` blocks on lent threads (the engine's worker pool).
using BlockRunner = std::function<void(std::int64_t count, const std::function<void(std::int64_t)>& block)>;

/// For the engines: while alive, for_each_block called on the thread that built it uses `runner`; calls from
/// any other thread (a gradient thread running a worker rule) run their blocks in place.
class PHALANX_EXPORT LentThreads {
 public:
  explicit LentThreads(BlockRunner runner);
  ~LentThreads();
  LentThreads(const LentThreads&) = delete;
  LentThreads& operator=(const LentThreads&) = delete;

 private:
  BlockRunner previous_;
};

}  // namespace phalanx
