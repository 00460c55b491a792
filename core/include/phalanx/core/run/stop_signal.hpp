// SIGINT and SIGTERM as a request, not a kill: the handler only records the signal, and the engine that
// polls stop_requested() finishes the step in hand, saves a checkpoint and summary.json (status
// "interrupted") and returns; the CLI then exits with 128 + the signal number, as shells expect. A second
// signal ends the process at once.
#pragma once

namespace phalanx::core {

void install_stop_handlers();
bool stop_requested();
/// The signal that asked to stop (SIGINT or SIGTERM), 0 when none did.
int stop_signal();
/// Forgets a request (tests that run several engines in one process).
void clear_stop_request();

}  // namespace phalanx::core
