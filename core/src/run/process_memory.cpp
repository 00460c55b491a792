#include "phalanx/core/run/process_memory.hpp"

#include <cstdint>
#include <mutex>
#include <unordered_map>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__linux__)
#include <pthread.h>
#include <sys/mman.h>
#endif

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

namespace phalanx::core {

namespace {

#if defined(__linux__) && defined(MADV_HUGEPAGE)

constexpr std::size_t kHugePage = std::size_t{2} << 20;

std::mutex g_mapped_mutex;
std::unordered_map<void*, std::size_t> g_mapped;  // blocks this allocator mapped, and their lengths
c10::DeleterFnPtr g_small_deleter = nullptr;      // LibTorch's own, for everything else

// Maps `bytes` (rounded up to whole 2 MiB pages) at a 2 MiB boundary, so every page of it can be a huge one.
void* map_in_huge_pages(std::size_t bytes) {
  const std::size_t length = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* raw = mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  const std::uintptr_t end = start + length + kHugePage;
  if (end > aligned + length) munmap(reinterpret_cast<void*>(aligned + length), end - (aligned + length));
  void* block = reinterpret_cast<void*>(aligned);
  madvise(block, length, MADV_HUGEPAGE);  // advice only: where the kernel declines, 4 KiB pages serve the same
  std::lock_guard<std::mutex> lock(g_mapped_mutex);
  g_mapped[block] = length;
  return block;
}

// The one deleter for both kinds of block (context == data, as LibTorch's allocator has it, so MemoryGuard's
// counting allocator can wrap this one). Blocks this allocator mapped start at a 2 MiB boundary, so any other
// pointer goes straight to LibTorch's deleter without the lookup.
void release_block(void* data) {
  if (data != nullptr && reinterpret_cast<std::uintptr_t>(data) % kHugePage == 0) {
    std::size_t length = 0;
    {
      std::lock_guard<std::mutex> lock(g_mapped_mutex);
      auto it = g_mapped.find(data);
      if (it != g_mapped.end()) {
        length = it->second;
        g_mapped.erase(it);
      }
    }
    if (length > 0) {
      munmap(data, length);
      return;
    }
  }
  g_small_deleter(data);
}

class HugePageAllocator final : public c10::Allocator {
 public:
  c10::Allocator* small = nullptr;

  c10::DataPtr allocate(size_t n) const override {
    if (n >= kHugePageTensorBytes) {
      if (void* block = map_in_huge_pages(n)) return {block, block, &release_block, c10::Device(c10::DeviceType::CPU)};
    }
    c10::DataPtr inner = small->allocate(n);
    const c10::Device device = inner.device();
    void* data = inner.release_context();
    return {data, data, &release_block, device};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release_block; }
};

HugePageAllocator g_huge_page_allocator;

// A sweep forks its runs (core/src/experiment/sweep.cpp). Were another thread inside map_in_huge_pages or
// release_block at that moment, the child would start with the bookkeeping's mutex held and hang at its
// first large tensor; so fork waits for the mutex and both sides release it after.
void hold_mapped_mutex() { g_mapped_mutex.lock(); }
void release_mapped_mutex() { g_mapped_mutex.unlock(); }

void install_huge_page_allocator() {
  c10::Allocator* current = c10::GetAllocator(c10::DeviceType::CPU);
  if (current == &g_huge_page_allocator) return;
  static const int fork_handlers = pthread_atfork(&hold_mapped_mutex, &release_mapped_mutex, &release_mapped_mutex);
  (void)fork_handlers;
  g_small_deleter = current->raw_deleter();
  if (g_small_deleter == nullptr) return;  // a CPU allocator that cannot free by pointer: leave it alone
  g_huge_page_allocator.small = current;
  // LibTorch's default has priority 0; MemoryGuard installs and removes its counting allocator at 10 (which
  // leaves the slot at 10), and SetAllocator takes only an equal or higher one.
  c10::SetAllocator(c10::DeviceType::CPU, &g_huge_page_allocator, /*priority=*/10);
}

#else

void install_huge_page_allocator() {}

#endif

}  // namespace

void tune_process_memory() {
#if defined(__GLIBC__)
  constexpr int kLargestKept = 32 << 20;  // glibc's own ceiling for its mapping threshold on 64-bit systems
  mallopt(M_MMAP_THRESHOLD, kLargestKept);
  mallopt(M_TRIM_THRESHOLD, 8 * kLargestKept);  // and keep up to 256 MiB free at the heap's top
#endif
  install_huge_page_allocator();
}

}  // namespace phalanx::core
