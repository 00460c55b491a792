// Per-round plugin diagnostics (phalanx/diagnostics.hpp): declared names become `<plugin>.<name>` columns of
// every evaluation row, Mean and Last summaries, undeclared names are errors naming the plugin, and queries of
// the defence oracle record nothing.
#include <cmath>
#include <sstream>

#include <ATen/ATen.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/registrar.hpp"
#include "small_run.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

const char* kDiagnosticsRun = R"(name: diagnostics
seed: 3
data: {name: synthetic, train_size: 600, test_size: 100, features: 8, classes: 3}
model: {name: mlp, hidden: [8]}
workers: {count: 6, byzantine: 1}
optimizer: {name: sgd, lr: 0.05}
attack: {name: alie}
training: {batch_size: 8, budget: {steps: 6}, eval_every: 3}
)";

core::PipelineSpec spec(const std::vector<std::string>& overrides) {
  return resolve_config(kDiagnosticsRun, overrides, builtin_registry(), "diagnostics.yaml");
}

// metrics.csv's values of `column`, one per row (fails when the column is missing).
std::vector<double> column_of(const std::string& dir, const std::string& column) {
  std::stringstream in(read_file(dir + "/metrics.csv"));
  std::string line;
  std::getline(in, line);
  std::stringstream header(line);
  std::size_t index = 0;
  bool found = false;
  for (std::string c; std::getline(header, c, ','); ++index)
    if (c == column) {
      found = true;
      break;
    }
  EXPECT_TRUE(found) << "no column " << column << " in " << line;
  std::vector<double> values;
  while (found && std::getline(in, line)) {
    std::stringstream cells(line);
    std::string cell;
    for (std::size_t i = 0; i <= index; ++i) std::getline(cells, cell, ',');
    values.push_back(std::strtod(cell.c_str(), nullptr));
  }
  return values;
}

std::vector<double> run_and_read(const std::string& aggregator, const std::string& column) {
  const std::string dir = temp_dir("diagnostics_" + column);
  const core::RunResult r =
      core::run_pipeline(spec({"aggregator=" + aggregator}), builtin_registry(), dir, nullptr);
  EXPECT_EQ(r.status, core::RunStatus::ok) << r.message;
  EXPECT_THAT(read_file(dir + "/summary.json"), ::testing::HasSubstr("\"" + column + "\": "));
  return column_of(dir, column);
}

TEST(Diagnostics, KrumCcAndFoolsGoldWriteTheirColumnsIntoEveryRow) {
  const auto selected = run_and_read("{name: krum}", "krum.selected");
  ASSERT_EQ(selected.size(), 2u);
  for (double id : selected) {
    EXPECT_EQ(id, std::floor(id));  // Last: one worker id, not a mean
    EXPECT_GE(id, 0);
    EXPECT_LT(id, 6);
  }
  // tau far below the gradients' size clips every row; far above it clips none.
  for (double clipped : run_and_read("{name: cc, tau: 1e-6}", "cc.clipped")) EXPECT_EQ(clipped, 6);
  for (double clipped : run_and_read("{name: cc, tau: 1e6}", "cc.clipped")) EXPECT_EQ(clipped, 0);
  for (double spread : run_and_read("{name: foolsgold}", "foolsgold.weight_spread")) {
    EXPECT_GE(spread, 0);
    EXPECT_LE(spread, 1);
  }
  for (double zero : run_and_read("{name: foolsgold}", "foolsgold.zero_weights")) {
    EXPECT_GE(zero, 0);
    EXPECT_LE(zero, 6);
  }
}

// The attack's sink: opt_alie's chosen factor, which ByzFL's search keeps at tau >= 0 from start 0.
TEST(Diagnostics, AnAttackReportsThroughItsRound) {
  const std::string dir = temp_dir("diagnostics_attack");
  const core::RunResult r = core::run_pipeline(spec({"aggregator={name: cm}", "attack={name: opt_alie, evals: 4}"}),
                                               builtin_registry(), dir, nullptr);
  ASSERT_EQ(r.status, core::RunStatus::ok) << r.message;
  const auto tau = column_of(dir, "opt_alie.tau");
  ASSERT_EQ(tau.size(), 2u);
  for (double t : tau) EXPECT_GE(t, 0);
}

TEST(Diagnostics, MeanAndLastSummariesAndNaNWithoutAReport) {
  core::DiagnosticsRecorder cc(spec({"aggregator={name: cc}"}), builtin_registry());
  EXPECT_EQ(cc.columns(), std::vector<std::string>{"cc.clipped"});
  cc.aggregator()->report("clipped", 1);
  cc.aggregator()->report("clipped", 2);
  EXPECT_EQ(cc.take_row(), std::vector<double>{1.5});
  EXPECT_TRUE(std::isnan(cc.take_row()[0]));  // nothing reported since the previous row

  core::DiagnosticsRecorder krum(spec({"aggregator={name: krum}"}), builtin_registry());
  krum.aggregator()->report("selected", 3);
  krum.aggregator()->report("selected", 1);
  EXPECT_EQ(krum.take_row(), std::vector<double>{1});
}

TEST(Diagnostics, AnUndeclaredNameIsAnErrorNamingThePlugin) {
  core::DiagnosticsRecorder cc(spec({"aggregator={name: cc}"}), builtin_registry());
  EXPECT_ERROR_WITH(cc.aggregator()->report("clipped_rows", 1), "aggregator 'cc'", "'clipped_rows'",
                    "declared: clipped");
  EXPECT_ERROR_WITH(cc.attack()->report("anything", 1), "attack 'alie'", "declared: none");
}

TEST(Diagnostics, DefenceOracleQueriesAndCallsOutsideARoundRecordNothing) {
  const core::PipelineSpec s = spec({"aggregator={name: cc, tau: 1e-6}"});
  const RunInfo info = core::run_info(s, "");
  core::EnginePlugins plugins = core::make_plugins(s, builtin_registry(), info, nullptr);
  const at::Tensor rows = at::ones({6, 4});
  RoundContext round;
  round.round = 0;
  core::aggregate_rows(s, plugins, rows, round, core::RoundKind::Query);
  core::aggregate_rows(s, plugins, rows);  // round -1: not a round of a run
  EXPECT_TRUE(std::isnan(plugins.diagnostics->take_row()[0]));
  core::aggregate_rows(s, plugins, rows, round);
  EXPECT_EQ(plugins.diagnostics->take_row(), std::vector<double>{6});
}

TEST(Diagnostics, ColumnsFollowThePipelineAndNameRepeatedPluginsApart) {
  EXPECT_EQ(core::diagnostic_columns(spec({"aggregator={name: cm}"}), builtin_registry()), std::vector<std::string>{});
  EXPECT_EQ(core::diagnostic_columns(spec({"aggregator={name: foolsgold}"}), builtin_registry()),
            (std::vector<std::string>{"foolsgold.weight_spread", "foolsgold.zero_weights"}));
}

// A diagnostic name becomes part of a CSV column and a JSON key: a comma, quote or capital letter, or the same name
// twice, is refused when the plugin registers.
TEST(Diagnostics, BadOrRepeatedDiagnosticNamesAreRefusedAtRegistration) {
  static std::vector<DiagnosticSpec> declared;
  auto register_with = [](std::vector<DiagnosticSpec> specs) {
    declared = std::move(specs);
    core::Registry r;
    r.register_inline("declares", [](void* registrar) {
      static_cast<Registrar*>(registrar)->add_aggregator(
          {"declaring", "", {}, declared}, [](const Params&, const Context&) -> std::unique_ptr<Aggregator> {
            return nullptr;
          });
    });
    return r.contains(core::Kind::Aggregator, "declaring");
  };
  EXPECT_TRUE(register_with({{"rows_kept", ""}, {"spread2", ""}}));
  EXPECT_ERROR_WITH(register_with({{"a,b", ""}}), "aggregator 'declaring' declares the diagnostic 'a,b'",
                    "lowercase letters, digits and '_'");
  EXPECT_ERROR_WITH(register_with({{"Kept", ""}}), "'Kept'");
  EXPECT_ERROR_WITH(register_with({{"kept", ""}, {"kept", ""}}), "declares the diagnostic 'kept' twice");
}

}  // namespace
}  // namespace phalanx::test
