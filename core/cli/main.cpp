// phalanx: the command line. parse.cpp reads the flags (CLI11); each verb is a function in its own file;
// errors become one clear message and the exit code documented in docs/reliability.md ("Exit codes").
#include <iostream>
#include <string>

#include "cli.hpp"

using namespace phalanx;

namespace {

int dispatch(const cli::Options& o) {
  if (o.command == "run") return cli::cmd_run(o);
  if (o.command == "validate") return cli::cmd_validate(o);
  if (o.command == "sweep") return cli::cmd_sweep(o);
  if (o.command == "report") return cli::cmd_report(o);
  if (o.command == "plugins") return cli::cmd_plugins(o);
  if (o.command == "launch") return cli::cmd_launch(o);
  if (o.command == "check-plugin") return cli::cmd_check_plugin(o);
  throw cli::UsageError("unknown command '" + o.command + "'");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    cli::Options o;
    if (const int code = cli::parse_command_line(argc, argv, o); code >= 0) return code;
    cli::apply_logging(o);
    return dispatch(o);
  } catch (const cli::UsageError& e) {
    std::cerr << "phalanx: " << e.what() << "\nRun 'phalanx --help' (or 'phalanx VERB --help') for the usage.\n";
    return cli::kExitBadInput;
  } catch (const Error& e) {
    std::cerr << "phalanx: error: " + std::string(e.what()) + "\n";
    return cli::kExitBadInput;
  } catch (const std::exception& e) {
    // Outside a run (a run's LibTorch errors become status "failed" in run_one): the first line only.
    const std::string what = e.what();
    std::cerr << "phalanx: internal error: " + what.substr(0, what.find('\n')) + "\n";
    return cli::kExitRunFailed;
  }
}
