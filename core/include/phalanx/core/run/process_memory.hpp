// How this process gets memory. Two defaults cost training runs dearly where a page fault is expensive (on
// the virtual machines this project is measured on, a first touch of a 4 KiB page took about 12 us):
// - glibc's malloc maps a block of more than 128 KiB afresh and unmaps it when it is freed, raising that limit
//   only on heuristics, so a plugin that allocates a few MB of temporaries per round can pay a fault per page
//   every round (minmax on the quick start's shape: 77-83 ms per call that way, 4.1-4.7 ms with them kept);
// - a block of 32 MiB or more is always mapped afresh (glibc will not keep it), in 4 KiB pages: an attack's
//   15 x 1e6 output (the zero attack at n = 64) took 169-176 ms per call, and 4.3-4.8 ms in 2 MiB pages.
// docs/BENCHMARKS.md ("Engine overhead", fourth round) has the measurements.
#pragma once

#include <cstddef>

namespace phalanx::core {

/// Call once, first thing in main() (the phalanx command and the benchmarks do): glibc keeps freed blocks of up
/// to 32 MiB for reuse, and LibTorch's CPU tensors of 32 MiB or more are mapped in 2 MiB pages (Linux
/// transparent huge pages, which Debian enables on request). Elsewhere it changes nothing.
void tune_process_memory();

/// Tensors of at least this many bytes are mapped in 2 MiB pages once tune_process_memory() has run.
constexpr std::size_t kHugePageTensorBytes = std::size_t{32} << 20;

}  // namespace phalanx::core
