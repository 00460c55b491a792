#include "phalanx/core/run/memory_guard.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <unordered_map>

#include <pthread.h>

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

namespace phalanx::core {

namespace {

std::atomic<std::int64_t> g_live{0}, g_peak{0}, g_cap{0}, g_start{0};  // g_live counts since the first guard
c10::DeleterFnPtr g_base_deleter = nullptr;
std::mutex g_sizes_mutex;
std::unordered_map<void*, std::int64_t> g_sizes;  // live allocations made through the guard

// Frees through the default allocator's raw deleter; the count stays right even for a tensor that outlives
// the guard.
void release(void* data) {
  {
    std::lock_guard<std::mutex> lock(g_sizes_mutex);
    auto it = g_sizes.find(data);
    if (it != g_sizes.end()) {
      g_live -= it->second;
      g_sizes.erase(it);
    }
  }
  g_base_deleter(data);
}

// Context == data, like LibTorch's default CPU allocator, so raw_allocate and raw_deallocate keep working.
class CountingAllocator final : public c10::Allocator {
 public:
  c10::Allocator* base = nullptr;

  c10::DataPtr allocate(size_t n) const override {
    const auto bytes = static_cast<std::int64_t>(n);
    const std::int64_t live = g_live.load() - g_start.load();
    if (live + bytes > g_cap.load()) throw MemoryCapExceeded(bytes, live, g_cap.load());
    c10::DataPtr inner = base->allocate(n);
    const c10::Device device = inner.device();
    void* data = inner.release_context();
    {
      std::lock_guard<std::mutex> lock(g_sizes_mutex);
      g_sizes[data] = bytes;
    }
    const std::int64_t now = g_live += bytes;
    std::int64_t peak = g_peak.load();
    while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
    }
    return {data, data, &release, device};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
};

CountingAllocator g_counting;

// As the huge-page allocator's (core/src/run/process_memory.cpp): a fork made while another thread holds the
// counting's mutex would leave the child unable to allocate or free a tensor, so fork waits for it.
void hold_sizes_mutex() { g_sizes_mutex.lock(); }
void release_sizes_mutex() { g_sizes_mutex.unlock(); }
constexpr std::uint8_t kGuardPriority = 10;  // above the default allocator's 0, so SetAllocator takes it

}  // namespace

MemoryCapExceeded::MemoryCapExceeded(std::int64_t requested_, std::int64_t live_, std::int64_t cap_)
    : Error("an allocation of " + format_bytes(static_cast<double>(requested_)) + " on top of " +
            format_bytes(static_cast<double>(live_)) + " would exceed the memory limit of " +
            format_bytes(static_cast<double>(cap_))),
      requested(requested_), live(live_), cap(cap_) {}

MemoryGuard::MemoryGuard(std::int64_t cap_bytes) {
  static const int fork_handlers = pthread_atfork(&hold_sizes_mutex, &release_sizes_mutex, &release_sizes_mutex);
  (void)fork_handlers;
  g_counting.base = c10::GetAllocator(c10::DeviceType::CPU);
  if (g_counting.base == &g_counting) throw Error("MemoryGuard: only one guard may be alive at a time");
  // The default CPU allocator's memory is freed by its raw deleter (context == data).
  g_base_deleter = g_counting.base->raw_deleter();
  if (!g_base_deleter) throw Error("MemoryGuard: LibTorch's CPU allocator has no raw deleter to free through");
  g_start = g_live.load();
  g_peak = g_live.load();
  g_cap = cap_bytes;
  c10::SetAllocator(c10::DeviceType::CPU, &g_counting, kGuardPriority);
}

MemoryGuard::~MemoryGuard() {
  c10::SetAllocator(c10::DeviceType::CPU, g_counting.base, kGuardPriority);
  // Tensors made under the guard may live on; their deleter still subtracts, harmlessly.
  g_cap = INT64_MAX;
}

std::int64_t MemoryGuard::live() const { return g_live.load() - g_start.load(); }
std::int64_t MemoryGuard::peak() const { return g_peak.load() - g_start.load(); }
void MemoryGuard::reset_peak() { g_peak = g_live.load(); }

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  char text[32];
  std::snprintf(text, sizeof text, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return text;
}

}  // namespace phalanx::core
