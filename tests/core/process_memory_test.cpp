// The process's memory settings (core/src/run/process_memory.cpp): tensors of 32 MiB or more come from the
// huge-page allocator, start at a 2 MiB boundary, hold what is written, and their mapping is gone once freed;
// smaller ones and MemoryGuard's counting work as before with it installed.
#include <ATen/ATen.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

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

// Whether a child forked now can allocate and free a large block (both bookkeeping mutexes) within 10 s;
// a child that hangs is killed.
bool child_can_allocate() {
  const pid_t pid = ::fork();
  if (pid == 0) {
    {
      c10::DataPtr block = c10::GetAllocator(c10::DeviceType::CPU)->allocate(core::kHugePageTensorBytes);
    }
    ::_exit(0);
  }
  if (pid < 0) return false;
  int status = 0;
  for (int waited = 0; waited < 10000; ++waited) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return false;
}

// Sweeps fork their runs. A fork while another thread held the huge-page allocator's or MemoryGuard's mutex
// used to leave the child with it held, and its first large tensor hung; the fork handlers make fork wait.
TEST(ProcessMemory, ChildrenForkedWhileAnotherThreadAllocatesCanAllocate) {
  core::tune_process_memory();
  core::MemoryGuard guard(std::int64_t{8} << 30);
  std::atomic<bool> stop{false};
  // Large blocks hold the huge-page allocator's mutex briefly between system calls; small ones hold the
  // guard's often enough that without its handler 3 to 10 of the 200 children hung in each of three runs.
  std::thread large([&] {
    c10::Allocator* allocator = c10::GetAllocator(c10::DeviceType::CPU);
    while (!stop) c10::DataPtr block = allocator->allocate(core::kHugePageTensorBytes);
  });
  std::thread small([&] {
    c10::Allocator* allocator = c10::GetAllocator(c10::DeviceType::CPU);
    while (!stop) c10::DataPtr block = allocator->allocate(64);
  });
  int hung = 0;
  for (int i = 0; i < 200; ++i) hung += child_can_allocate() ? 0 : 1;
  stop = true;
  large.join();
  small.join();
  EXPECT_EQ(hung, 0) << "of 200 forked children";
}

}  // namespace
}  // namespace phalanx::test
