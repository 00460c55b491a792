// The config harness reaches sweep.cpp for expand_sweep; the same file's run_sweep (never called by a
// harness) also asks where a run keeps its checkpoint, which is defined with the checkpoint code
// (run_checkpoint.cpp: LibTorch serialisation and the engines). Rather than compile all of that with
// clang and the sanitizers for one string, the fuzz build links this copy; the declaration comes from
// the real header, so a changed signature fails here at compile time.
#include "phalanx/core/run_control.hpp"

namespace phalanx::core {

std::string checkpoint_path(const std::string& out_dir) { return out_dir + "/checkpoint.pt"; }

}  // namespace phalanx::core
