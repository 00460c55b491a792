// Same config and seed give bit-identical metrics across refactorings: two small runs (sync with a
// Dirichlet split, async with an iid split and uneven worker speeds) must reproduce, row for row, the
// metrics a build of the code before the config sections were split into functions recorded. A change
// here means results changed: say why in the commit and record the new rows deliberately.
// Re-recorded once (2026-12-01): honest_deviation and honest_cosine moved in their last one or two digits when
// the honest comparison became one blocked pass summed in block order (engine_parts.cpp); no other value
// changed.
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine.hpp"

#include "support.hpp"

namespace phalanx::test {
namespace {

// The same run as tests/core/engine_test.cpp's kSmall, copied on purpose: the rows below were recorded for
// exactly this config, so an edit to that test's fixture must not change what this test compares.
const char* kSyncDirichlet = R"(name: small
seed: 5
data: {name: synthetic, train_size: 600, test_size: 200, features: 10, classes: 3, partition: {name: dirichlet, alpha: 1.0}}
model: {name: mlp, hidden: [16]}
workers: {count: 6, byzantine: 2}
optimizer: {name: byzsgdnm, lr: 0.1, schedule: cosine}
aggregator: {name: cc, tau: 1.0}
attack: {name: alie}
training: {batch_size: 8, budget: {steps: 60}, eval_every: 20}
)";

const char* kSyncDirichletRows =
    "{\"step\": 20, \"epoch\": 1.6, \"gradients\": 640,  \"lr\": 0.07723195175075137, \"train_loss\": 0.6800760643556714, \"test_loss\": 0.25823394775390623, \"test_accuracy\": 0.955, \"nonfinite_messages\": 0, \"sim_time\": 20, \"staleness_mean\": 0, \"staleness_max\": 0, \"rejected_messages\": 0, \"missing_messages\": 0, \"honest_deviation\": 0.006744283157056831, \"honest_cosine\": 0.9999855609914103}\n"
    "{\"step\": 40, \"epoch\": 3.2, \"gradients\": 1280,  \"lr\": 0.027300475013022664, \"train_loss\": 0.1489156630006619, \"test_loss\": 0.05881420135498047, \"test_accuracy\": 0.99, \"nonfinite_messages\": 0, \"sim_time\": 40, \"staleness_mean\": 0, \"staleness_max\": 0, \"rejected_messages\": 0, \"missing_messages\": 0, \"honest_deviation\": 3.6243411766495405e-08, \"honest_cosine\": 0.9999999999999997}\n"
    "{\"step\": 60, \"epoch\": 4.8, \"gradients\": 1920,  \"lr\": 6.852326227130834e-05, \"train_loss\": 0.0849025935633108, \"test_loss\": 0.05215907573699951, \"test_accuracy\": 0.985, \"nonfinite_messages\": 0, \"sim_time\": 60, \"staleness_mean\": 0, \"staleness_max\": 0, \"rejected_messages\": 0, \"missing_messages\": 0, \"honest_deviation\": 4.134305711370075e-08, \"honest_cosine\": 0.9999999999999994}\n";

const char* kAsyncIid = R"(name: small_async
engine: {name: async, buffer: 2, speed: {name: heterogeneous, spread: 0.5}}
seed: 5
data: {name: synthetic, train_size: 600, test_size: 200, features: 10, classes: 3, partition: iid}
model: {name: mlp, hidden: [16]}
workers: {count: 6, byzantine: 2}
optimizer: {name: byzsgdnm, lr: 0.1, schedule: cosine}
aggregator: {name: cc, tau: 1.0}
attack: {name: alie}
training: {batch_size: 8, budget: {steps: 60}, eval_every: 20}
)";

const char* kAsyncIidRows =
    "{\"step\": 20, \"epoch\": 0.5333333333333333, \"gradients\": 264,  \"lr\": 0.07723195175075137, \"train_loss\": 0.9263469113243951, \"test_loss\": 0.5648735046386719, \"test_accuracy\": 0.775, \"nonfinite_messages\": 0, \"sim_time\": 13.5, \"staleness_mean\": 2.25, \"staleness_max\": 5, \"rejected_messages\": 0, \"missing_messages\": 0, \"honest_deviation\": 0.007982002596965378, \"honest_cosine\": 0.9999759394860608}\n"
    "{\"step\": 40, \"epoch\": 1.0666666666666667, \"gradients\": 520,  \"lr\": 0.027300475013022664, \"train_loss\": 0.33342165127396584, \"test_loss\": 0.16421945571899413, \"test_accuracy\": 0.965, \"nonfinite_messages\": 0, \"sim_time\": 26, \"staleness_mean\": 2.5, \"staleness_max\": 6, \"rejected_messages\": 0, \"missing_messages\": 0, \"honest_deviation\": 2.8070320356749252e-08, \"honest_cosine\": 0.9999999999999998}\n"
    "{\"step\": 60, \"epoch\": 1.6, \"gradients\": 776,  \"lr\": 6.852326227130834e-05, \"train_loss\": 0.1424681654933727, \"test_loss\": 0.12639761924743653, \"test_accuracy\": 0.98, \"nonfinite_messages\": 0, \"sim_time\": 38.5, \"staleness_mean\": 2.525, \"staleness_max\": 5, \"rejected_messages\": 0, \"missing_messages\": 0, \"honest_deviation\": 2.6129740190825124e-08, \"honest_cosine\": 0.9999999999999998}\n";

// The rows without the plugins' diagnostic columns, which come after honest_cosine (cc's `cc.clipped` was added
// after these rows were recorded; tests/core/diagnostics_test.cpp checks it). Fails when a row lacks
// honest_cosine, so a renamed column still shows up here.
std::string without_diagnostics(const std::string& rows) {
  std::string out;
  std::stringstream in(rows);
  for (std::string line; std::getline(in, line);) {
    const auto last_fixed = line.find("\"honest_cosine\": ");
    EXPECT_NE(last_fixed, std::string::npos) << line;
    const auto diagnostics = line.find(", ", last_fixed);
    out += (diagnostics == std::string::npos ? line : line.substr(0, diagnostics) + "}") + "\n";
  }
  return out;
}

// The run goes through `phalanx run` in a process of its own, with OpenBLAS's AVX2 kernels (the Haswell core
// type) whatever the CPU: OpenBLAS picks its matrix kernels by CPU model when it loads, and on CPUs with
// AVX-512 it may pick kernels that sum the forward and backward products in another order (on a Zen 4 CPU,
// its Cooperlake kernels move train_loss in the eighth digit). The variable has to be set before the process
// starts. The rows were recorded with the AVX2 kernels; every CPU these tests run on has AVX2.
std::string rows_of(const std::string& yaml, const std::string& name) {
  const std::string dir = temp_dir("recorded_" + name);
  write_file(dir + "/" + name + ".yaml", yaml);
  std::string output;
  const int code = run_command("OPENBLAS_CORETYPE=Haswell " + phalanx_binary() + " run " + dir + "/" + name +
                                   ".yaml --out " + dir + "/run --quiet </dev/null",
                               &output);
  EXPECT_EQ(code, 0) << output;
  const std::string rows = metrics_without_wall_time(dir + "/run");
  EXPECT_THAT(rows, ::testing::HasSubstr("\"cc.clipped\": "));
  return without_diagnostics(rows);
}

TEST(RecordedMetrics, SyncRunMatchesTheRowsRecordedBeforeTheConfigRefactoring) {
  EXPECT_EQ(rows_of(kSyncDirichlet, "sync"), kSyncDirichletRows);
}

TEST(RecordedMetrics, AsyncRunMatchesTheRowsRecordedBeforeTheConfigRefactoring) {
  EXPECT_EQ(rows_of(kAsyncIid, "async"), kAsyncIidRows);
}

// data.seed left out is derived from the run seed, so writing no data.seed changes nothing.
TEST(RecordedMetrics, ConfigsWithoutDataSeedKeepTheirRows) {
  Value config = core::parse_yaml(kSyncDirichlet, "sync.yaml");
  const core::PipelineSpec spec = core::resolve_pipeline(config, builtin_registry());
  EXPECT_FALSE(spec.data_seed.has_value());
}

}  // namespace
}  // namespace phalanx::test
