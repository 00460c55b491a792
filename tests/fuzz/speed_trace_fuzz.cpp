// Fuzzes the trace file of the `trace` speed model (engine.speed.file, core/src/engine/speed_trace.cpp). The
// engine's SpeedModel takes trace[k][pos % trace[k].size()], so besides "no crash" a trace that parses
// must give every line at least one positive finite time.
#include <cmath>
#include <cstdint>

#include "fuzz_support.hpp"
#include "phalanx/core/engine/speed_trace.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace phalanx;
  const std::string file = fuzz::write_file(fuzz::scratch_dir() / "trace.txt", data, size);
  fuzz::expect_clean(file, [&] {
    const auto trace = core::read_speed_trace(file);
    for (std::size_t k = 0; k < trace.size(); ++k) {
      if (trace[k].empty()) fuzz::finding("worker line " + std::to_string(k) + " of the trace holds no time");
      for (double t : trace[k])
        if (!(t > 0) || !std::isfinite(t)) fuzz::finding("a non-positive or non-finite time was accepted");
    }
  });
  return 0;
}
