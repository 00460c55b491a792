// Counts the bytes LibTorch allocates on the CPU while a MemoryGuard is alive, and refuses an allocation
// that would take the count above a cap with a phalanx error instead of letting the system allocator fail
// (or the kernel kill the process). The preflight (preflight.hpp) loads the data, builds the model and
// runs one batch under a guard, so it both measures them and stops one that cannot fit before it is made.
#pragma once

#include <cstdint>
#include <string>

#include "phalanx/error.hpp"

namespace phalanx::core {

/// Thrown from inside LibTorch's allocator by an allocation above the guard's cap.
struct MemoryCapExceeded : Error {
  MemoryCapExceeded(std::int64_t requested, std::int64_t live, std::int64_t cap);
  std::int64_t requested, live, cap;
};

/// While alive, LibTorch's CPU allocations go through a counting allocator (one guard at a time).
class MemoryGuard {
 public:
  explicit MemoryGuard(std::int64_t cap_bytes);
  ~MemoryGuard();
  MemoryGuard(const MemoryGuard&) = delete;
  MemoryGuard& operator=(const MemoryGuard&) = delete;

  /// Bytes allocated through the guard and not yet freed, and the most there were since `reset_peak`.
  std::int64_t live() const;
  std::int64_t peak() const;
  void reset_peak();
};

/// Human-readable size: "512 B", "3.2 MiB", "4.0 TB"-style binary units (KiB, MiB, GiB, TiB).
std::string format_bytes(double bytes);

}  // namespace phalanx::core
