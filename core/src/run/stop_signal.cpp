#include "phalanx/core/run/stop_signal.hpp"

#include <atomic>
#include <csignal>

namespace phalanx::core {

namespace {
// Lock-free atomics are async-signal-safe; nothing else is touched in the handler.
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free);

// The first signal asks for a clean stop; a second one (an impatient Ctrl-C Ctrl-C) ends the process at once
// with the default action, without a checkpoint. signal() and raise() are async-signal-safe.
extern "C" void on_stop_signal(int signal) {
  if (g_signal.exchange(signal) != 0) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}
}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() { return g_signal.load() != 0; }
int stop_signal() { return g_signal.load(); }
void clear_stop_request() { g_signal = 0; }

}  // namespace phalanx::core
