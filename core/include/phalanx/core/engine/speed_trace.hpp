// The trace file of the `trace` speed model (engine.speed.file): line k lists worker k's simulated
// compute times, separated by blanks, cycled by the engine; empty or blank lines and lines starting with
// '#' are skipped. Kept apart from SpeedModel so it can be read from memory (tests, the fuzzer of tests/fuzz/).
#pragma once

#include <istream>
#include <string>
#include <vector>

namespace phalanx::core {

/// One list of times per worker line. Throws phalanx::Error naming `name`:line for anything that is not a
/// positive finite number.
std::vector<std::vector<double>> parse_speed_trace(std::istream& in, const std::string& name);
/// Opens `path` and parses it; a missing or unreadable file is a phalanx::Error naming engine.speed.file.
std::vector<std::vector<double>> read_speed_trace(const std::string& path);

}  // namespace phalanx::core
