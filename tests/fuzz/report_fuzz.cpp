// Fuzzes `phalanx report` (core/src/experiment/report.cpp): it reads run folders written by phalanx, but a user may
// point it at folders that were edited, copied half-way or written by another version. The input holds
// up to two run folders' files separated by NUL bytes: config.yaml, summary.json, metrics.csv of run a,
// then the same of run b. Plots are off (no gnuplot processes); the markdown table is built in full.
#include <cstdint>
#include <filesystem>

#include "fuzz_support.hpp"
#include "phalanx/core/experiment/report.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace phalanx;
  const std::vector<std::string> parts = fuzz::split_at_nul(data, size);
  const auto dir = fuzz::scratch_dir() / "runs";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const char* names[] = {"a/config.yaml", "a/summary.json", "a/metrics.csv",
                         "b/config.yaml", "b/summary.json", "b/metrics.csv"};
  for (std::size_t i = 0; i < parts.size() && i < 6; ++i)
    fuzz::write_file(dir / names[i], reinterpret_cast<const std::uint8_t*>(parts[i].data()), parts[i].size());
  fuzz::expect_clean("", [&] {
    core::ReportOptions options;
    options.plots = false;
    options.best_over = {"optimizer.lr"};
    options.plot_by = {"aggregator"};
    core::write_report(dir.string(), options);
  });
  return 0;
}
