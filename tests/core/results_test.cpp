// The committed studies (docs/results/README.md): every report kept beside its runs is the report those runs
// give today, so each number a results doc quotes from it can be checked without rerunning a sweep.
#include <algorithm>
#include <filesystem>
#include <vector>

#include "support.hpp"

namespace phalanx::test {
namespace {

namespace fs = std::filesystem;

// The committed sweep folders: docs/results/**/runs holding a sweep.yaml and a report.md.
std::vector<fs::path> committed_sweeps() {
  std::vector<fs::path> found;
  for (const auto& e : fs::recursive_directory_iterator(source_dir() + "/docs/results"))
    if (e.is_directory() && e.path().filename() == "runs" && fs::exists(e.path() / "sweep.yaml") &&
        fs::exists(e.path() / "report.md"))
      found.push_back(e.path());
  std::sort(found.begin(), found.end());
  return found;
}

// report.md without its title line, which names the folder it was written in.
std::string report_body(const fs::path& dir) {
  const std::string text = read_file((dir / "report.md").string());
  return text.substr(text.find('\n') + 1);
}

TEST(Results, CommittedReportsRegenerateFromTheirRuns) {
  const std::vector<fs::path> sweeps = committed_sweeps();
  ASSERT_FALSE(sweeps.empty()) << "no docs/results/**/runs folder with a sweep.yaml and a report.md";
  for (const fs::path& committed : sweeps) {
    const fs::path copy = fs::path(temp_dir("results")) / "runs";
    fs::copy(committed, copy, fs::copy_options::recursive);
    for (const char* generated : {"report.md", "report.html", "plots"}) fs::remove_all(copy / generated);
    std::string out;
    // --no-plots as docs/results/keep_runs.sh writes them: the SVG figures, no gnuplot PNGs.
    ASSERT_EQ(run_command(phalanx_binary() + " report " + copy.string() + " --no-plots", &out), 0)
        << committed << "\n" << out;
    EXPECT_EQ(report_body(copy), report_body(committed))
        << committed << ": the committed report.md is not what its runs give; regenerate it with `phalanx report`";
    // The figures the report draws itself (SVG).
    int figures = 0;
    for (const auto& plot : fs::directory_iterator(committed / "plots")) {
      if (plot.path().extension() != ".svg") continue;
      EXPECT_EQ(read_file((copy / "plots" / plot.path().filename()).string()), read_file(plot.path().string()))
          << plot.path();
      ++figures;
    }
    EXPECT_GT(figures, 0) << committed;
  }
}

}  // namespace
}  // namespace phalanx::test
