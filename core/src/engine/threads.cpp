#include "phalanx/core/engine/threads.hpp"

#include <dlfcn.h>

#include <ATen/Parallel.h>

namespace phalanx::core {

void set_compute_threads(int threads) {
  at::set_num_threads(threads);
  // Looked up at run time: which BLAS libtorch uses is chosen by Debian's alternatives system.
  using SetThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(threads);
}

}  // namespace phalanx::core
