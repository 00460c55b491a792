// phalanx: the command line. parse.cpp reads the flags (CLI11); each verb is a function in its own file;
// errors become one clear message and the exit code documented in docs/reliability.md ("Exit codes").
#include <iostream>
#include <string>

#include "cli.hpp"
#include "phalanx/core/run/process_memory.hpp"

using namespace phalanx;

namespace phalanx::cli {

namespace {

int dispatch(const Options& o) {
  if (o.command == "run") return cmd_run(o);
  if (o.command == "validate") return cmd_validate(o);
  if (o.command == "sweep") return cmd_sweep(o);
  if (o.command == "report") return cmd_report(o);
  if (o.command == "plugins") return cmd_plugins(o);
  if (o.command == "launch") return cmd_launch(o);
  if (o.command == "check-plugin") return cmd_check_plugin(o);
  throw UsageError("unknown command '" + o.command + "'");
}

}  // namespace

int execute(const Options& o) {
  try {
    apply_logging(o);
    return dispatch(o);
  } catch (const UsageError& e) {
    std::cerr << "phalanx: " << e.what() << "\nRun 'phalanx --help' (or 'phalanx VERB --help') for the usage.\n";
    return kExitBadInput;
  } catch (const Error& e) {
    std::cerr << "phalanx: error: " + std::string(e.what()) + "\n";
    return kExitBadInput;
  } catch (const std::exception& e) {
    // Outside a run (a run's LibTorch errors become status "failed" in run_one): the first line only.
    const std::string what = e.what();
    std::cerr << "phalanx: internal error: " + what.substr(0, what.find('\n')) + "\n";
    return kExitRunFailed;
  }
}

}  // namespace phalanx::cli

int main(int argc, char** argv) {
  phalanx::core::tune_process_memory();
  cli::Options o;
  try {
    if (const int code = cli::parse_command_line(argc, argv, o); code >= 0) return code;
  } catch (const cli::UsageError& e) {
    std::cerr << "phalanx: " << e.what() << "\nRun 'phalanx --help' (or 'phalanx VERB --help') for the usage.\n";
    return cli::kExitBadInput;
  }
  return cli::execute(o);
}
