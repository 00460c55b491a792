// Inputs that made a fuzzer of tests/fuzz/ fail (docs/reliability.md, "Fuzzing"), replayed in the normal
// build through the code a run uses: each must now end in a clear phalanx::Error naming the file, or in
// a valid result. tests/fuzz/regressions/<harness>/ holds the inputs; .ci/fuzz.sh also replays them under
// the sanitizers.
#include <algorithm>
#include <filesystem>
#include <sstream>

#include "phalanx/core/engine_parts.hpp"
#include "phalanx/core/speed_trace.hpp"
#include "support.hpp"

namespace phalanx {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::vector<fs::path> regressions(const std::string& harness) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(fs::path(PHALANX_SOURCE_DIR) / "tests/fuzz/regressions" / harness))
    out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// A blank line used to become a worker without times; SpeedModel::next then took `pos % 0` (SIGFPE).
TEST(FuzzRegressions, SpeedTraceInputsGiveTimesOrAClearError) {
  const auto files = regressions("speed_trace");
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    core::SpeedSpec spec;
    spec.name = "trace";
    spec.file = f.string();
    for (std::int64_t workers : {1, 2}) {
      try {
        core::SpeedModel model(spec, workers, 1);
        for (std::int64_t k = 0; k < workers; ++k)
          for (int step = 0; step < 3; ++step) EXPECT_GT(model.next(k), 0.0);
      } catch (const Error& e) {
        EXPECT_THAT(e.what(), HasSubstr(f.filename().string()));
      }
    }
  }
}

TEST(FuzzRegressions, BlankTraceLinesAreSkippedLikeEmptyOnes) {
  std::istringstream in("1.0 2.0\n \t\r\n\v\n0.5\n");
  const auto trace = core::parse_speed_trace(in, "t.txt");
  ASSERT_EQ(trace.size(), 2u);
  EXPECT_EQ(trace[0], (std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(trace[1], (std::vector<double>{0.5}));
}

}  // namespace
}  // namespace phalanx
