// The process's memory settings (core/src/run/process_memory.cpp): tensors of 32 MiB or more come from the
// huge-page allocator, start at a 2 MiB boundary, hold what is written, and their mapping is gone once freed;
// smaller ones and MemoryGuard's counting work as before with it installed.
#include <ATen/ATen.h>

#include <fstream>
#include <sstream>
#include <string>

#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include "phalanx/core/run/memory_guard.hpp"
#include "phalanx/core/run/process_memory.hpp"

namespace phalanx::test {
namespace {

// Whether /proc/self/maps lists a mapping that starts at `address`.
bool mapping_starts_at(const void* address) {
  std::ostringstream hex;
  hex << std::hex << reinterpret_cast<std::uintptr_t>(address) << "-";
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.rfind(hex.str(), 0) == 0) return true;
  return false;
}

constexpr std::int64_t kLargeFloats = static_cast<std::int64_t>(core::kHugePageTensorBytes / 4) + 3;

TEST(ProcessMemory, LargeTensorsAreMappedAtHugePageBoundariesAndUnmappedWhenFreed) {
  core::tune_process_memory();
  core::tune_process_memory();  // a second call changes nothing
  const void* address = nullptr;
  {
    at::Tensor large = at::empty({kLargeFloats});
    address = large.data_ptr();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(address) % (2u << 20), 0u);
    EXPECT_TRUE(mapping_starts_at(address));
    large.fill_(1.5f);
    large[kLargeFloats - 1] = 2.5f;
    EXPECT_DOUBLE_EQ(large.sum(at::kDouble).item<double>(), 1.5 * (kLargeFloats - 1) + 2.5);
    at::Tensor small = at::arange(1000, at::kFloat);
    EXPECT_EQ(small.sum().item<float>(), 499500.0f);
  }
  EXPECT_FALSE(mapping_starts_at(address));
}

TEST(ProcessMemory, MemoryGuardCountsLargeTensorsThroughIt) {
  core::tune_process_memory();
  core::MemoryGuard guard(std::int64_t{1} << 30);
  {
    at::Tensor large = at::zeros({kLargeFloats});
    EXPECT_GE(guard.live(), kLargeFloats * 4);
    EXPECT_THROW(at::empty({std::int64_t{1} << 30}), core::MemoryCapExceeded);  // 4 GiB
  }
  EXPECT_LT(guard.live(), kLargeFloats * 4);
}

}  // namespace
}  // namespace phalanx::test
