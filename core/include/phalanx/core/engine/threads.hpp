// Thread settings for the numeric libraries under LibTorch.
#pragma once

namespace phalanx::core {

/// Sets LibTorch's intra-op threads and, when the BLAS in use is OpenBLAS, its own thread pool too:
/// OpenBLAS ignores LibTorch's setting and its idle threads spin, burning a core that parallel runs need.
void set_compute_threads(int threads);

}  // namespace phalanx::core
