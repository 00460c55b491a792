// Sweeps (grid x seeds, parallel processes, resume) and reports.
#include "phalanx/core/experiment/sweep.hpp"

#include <filesystem>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/experiment/report.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

const char* kSweep = R"(name: sw
data: {name: synthetic, train_size: 600, test_size: 200}
model: {name: logreg}
workers: {count: 5, byzantine: 1}
optimizer: {name: byzsgdnm, lr: 0.1}
aggregator: {name: cm}
attack: {name: bitflip, scale: 10}
training: {batch_size: 8, budget: {gradients: 4000}, eval_every: 25}
sweep:
  aggregator: [{name: cm}, {name: cc, tau: 1.0}]
  training.batch_size: [8, 32]
  optimizer.lr: [0.05, 0.3]
seeds: [1, 2]
report: {best_over: [optimizer.lr]}
)";

TEST(Sweep, ExpandsTheGridTimesSeeds) {
  auto runs = core::expand_sweep(core::parse_yaml(kSweep, "s.yaml"));
  ASSERT_EQ(runs.size(), 16u);
  EXPECT_EQ(runs.front().label, "cm_8_0.05/seed1");
  EXPECT_EQ(runs.back().label, "cc-tau1.0_32_0.3/seed2");
  EXPECT_EQ(core::get_path(runs.back().config, "seed")->as_int(), 2);
  EXPECT_EQ(core::get_path(runs.back().config, "aggregator.name")->as_string(), "cc");
  EXPECT_EQ(core::get_path(runs.back().config, "training.batch_size")->as_int(), 32);
  for (const char* gone : {"sweep", "seeds", "report", "compare"}) EXPECT_EQ(runs.back().config.find(gone), nullptr);
}

TEST(Sweep, VariantsSetSeveralKeysAtOnce) {
  const char* yaml = R"(data: synthetic
model: logreg
optimizer: {name: ormo, lr: 0.1}
engine: {name: async}
sweep:
  variants:
    - {label: ssgdm, optimizer: {name: ssgdm, lr: 0.2}, engine.name: sync}
    - {optimizer.name: asgd}
  variants_workers:
    - {workers.count: 4}
    - {label: big, workers.count: 16, optimizer.lr: 0.05}
)";
  auto runs = core::expand_sweep(core::parse_yaml(yaml, "v.yaml"));
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_EQ(runs[0].label, "ssgdm_4");
  EXPECT_EQ(core::get_path(runs[0].config, "engine.name")->as_string(), "sync");
  EXPECT_EQ(core::get_path(runs[0].config, "optimizer.lr")->as_double(), 0.2);
  EXPECT_EQ(runs[1].label, "ssgdm_big");
  EXPECT_EQ(core::get_path(runs[1].config, "workers.count")->as_int(), 16);
  EXPECT_EQ(core::get_path(runs[1].config, "optimizer.lr")->as_double(), 0.05);
  EXPECT_EQ(runs[2].label, "asgd_4");
  EXPECT_EQ(core::get_path(runs[2].config, "engine.name")->as_string(), "async");
  EXPECT_EQ(core::get_path(runs[2].config, "optimizer.lr")->as_double(), 0.1);
  EXPECT_ERROR_WITH(core::expand_sweep(core::parse_yaml("sweep: {variants: [sync]}\n", "v.yaml")), "v.yaml:1",
                    "each entry of variants maps config keys");
}

TEST(Sweep, BadSeedsAndGridAreClear) {
  EXPECT_ERROR_WITH(core::expand_sweep(core::parse_yaml("seeds: [1, x]\n", "s.yaml")), "s.yaml:1", "seeds must be");
  EXPECT_ERROR_WITH(core::expand_sweep(core::parse_yaml("sweep: [1, 2]\n", "s.yaml")), "'sweep' must map");
  EXPECT_ERROR_WITH(core::expand_sweep(core::parse_yaml("sweep: {optimizer.lr: []}\n", "s.yaml")), "non-empty list");
}

int phalanx(const std::string& args, std::string* out) {
  return run_command(test::phalanx_binary() + " " + args, out);
}

TEST(Sweep, RunsInParallelResumesAndReports) {
  const std::string dir = temp_dir("sweep_cli");
  write_file(dir + "/s.yaml", kSweep);
  std::string out;
  ASSERT_EQ(phalanx("sweep " + dir + "/s.yaml --jobs 2 --out " + dir + "/runs", &out), 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("16 finished, 0 already done, 0 failed"));
  EXPECT_THAT(out, ::testing::HasSubstr("| aggregator | training.batch_size | best optimizer.lr | test accuracy (%)"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/runs/report.md"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/runs/plots/accuracy_vs_gradients.png"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/runs/cc-tau1.0_32_0.3/seed2/metrics.csv"));

  // Same budget of gradients for every batch size: 4 times fewer steps at batch 32 than at batch 8.
  EXPECT_THAT(read_file(dir + "/runs/cm_8_0.05/seed1/summary.json"), ::testing::HasSubstr("\"total_steps\": 125"));
  EXPECT_THAT(read_file(dir + "/runs/cm_32_0.05/seed1/summary.json"), ::testing::HasSubstr("\"total_steps\": 32"));

  // An interrupted sweep (one run lost its summary) redoes only that run.
  std::filesystem::remove(dir + "/runs/cm_8_0.3/seed1/summary.json");
  const std::string before = read_file(dir + "/runs/cm_8_0.05/seed1/metrics.csv");
  ASSERT_EQ(phalanx("sweep " + dir + "/s.yaml --jobs 2 --out " + dir + "/runs", &out), 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("1 finished, 15 already done, 0 failed"));
  EXPECT_EQ(read_file(dir + "/runs/cm_8_0.05/seed1/metrics.csv"), before);

  // `phalanx report` alone reproduces the table, taking best_over from sweep.yaml.
  std::string report;
  ASSERT_EQ(phalanx("report " + dir + "/runs --no-plots", &report), 0) << report;
  EXPECT_THAT(report, ::testing::HasSubstr("best optimizer.lr"));
  EXPECT_THAT(report, ::testing::HasSubstr("| cm | 8 |"));
}

TEST(Sweep, FailedRunsAreRetriedOnResumeFinishedOnesAreNot) {
  const std::string dir = temp_dir("sweep_finished");
  EXPECT_FALSE(core::run_finished(dir));
  write_file(dir + "/summary.json", "{\n  \"status\": \"failed\",\n  \"message\": \"x\"\n}\n");
  EXPECT_FALSE(core::run_finished(dir));
  write_file(dir + "/summary.json", "{\n  \"status\": \"diverged\"\n}\n");
  EXPECT_TRUE(core::run_finished(dir));
  write_file(dir + "/summary.json", "{\n  \"status\": \"ok\"\n}\n");
  EXPECT_TRUE(core::run_finished(dir));
}

TEST(Sweep, RunRefusesASweepConfig) {
  const std::string dir = temp_dir("sweep_refuse");
  write_file(dir + "/s.yaml", kSweep);
  std::string out;
  EXPECT_EQ(phalanx("run " + dir + "/s.yaml", &out), 2);
  EXPECT_THAT(out, ::testing::HasSubstr("run it with `phalanx sweep"));
}

TEST(Report, MeanAndStdOverSeedsFromMetrics) {
  // Two hand-made runs of one cell: final accuracies 0.8 and 0.9 -> 85.00 ± 7.07 (sample std).
  const std::string dir = temp_dir("report_stats");
  for (int seed : {1, 2}) {
    const std::string run = dir + "/seed" + std::to_string(seed);
    std::filesystem::create_directories(run);
    write_file(run + "/config.yaml", "name: r\nseed: " + std::to_string(seed) + "\naggregator: {name: cm}\n");
    write_file(run + "/summary.json", "{\"status\": \"ok\"}\n");
    write_file(run + "/metrics.csv", "step,gradients,train_loss,test_accuracy\n10,100,0.5,0.5\n20,200,0.25," +
                                         std::string(seed == 1 ? "0.8" : "0.9") + "\n");
  }
  core::ReportOptions options;
  options.plots = false;
  std::string md = core::write_report(dir, options);
  EXPECT_THAT(md, ::testing::HasSubstr("85.00 ± 7.07"));
  EXPECT_THAT(md, ::testing::HasSubstr("0.2500 ± 0.0000"));
  EXPECT_THAT(md, ::testing::HasSubstr("| 2 | 20 |"));
}

TEST(Report, NestedSectionsSimulatedTimeAndOnePlotSetPerFacet) {
  // Four cells: optimizer x engine.speed (a section nested in engine), with simulated time.
  const std::string dir = temp_dir("report_facets");
  int i = 0;
  for (const char* optimizer : {"asgd", "ormo"})
    for (const char* speed : {"{name: homogeneous}", "{name: heterogeneous, slow_factor: 4}"}) {
      const std::string run = dir + "/run" + std::to_string(i++);
      std::filesystem::create_directories(run);
      write_file(run + "/config.yaml", std::string("name: r\nseed: 1\noptimizer: {name: ") + optimizer +
                                           "}\nengine: {name: async, speed: " + speed + "}\n");
      write_file(run + "/summary.json", "{\"status\": \"ok\"}\n");
      write_file(run + "/metrics.csv", "step,gradients,train_loss,test_accuracy,sim_time\n10,100,0.5,0.5,7.5\n");
    }
  core::ReportOptions options;
  options.plot_by = {"engine.speed"};
  std::string md = core::write_report(dir, options);
  EXPECT_THAT(md, ::testing::HasSubstr("| engine.speed | optimizer | test accuracy (%) | train loss | sim time |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| heterogeneous | ormo | 50.00 ± 0.00 | 0.5000 ± 0.0000 | 7.5 ± 0.0 |"));
  // One set of plots per speed, each with one curve per optimizer, against simulated time too.
  EXPECT_THAT(md, ::testing::HasSubstr("### speed=heterogeneous"));
  for (const char* facet : {"speedheterogeneous", "speedhomogeneous"}) {
    const std::string folder = dir + "/plots/" + facet;
    EXPECT_TRUE(std::filesystem::exists(folder + "/curve1.dat")) << folder;
    EXPECT_FALSE(std::filesystem::exists(folder + "/curve2.dat")) << folder;
  }
  EXPECT_THAT(read_file(dir + "/plots/plots.gp"), ::testing::HasSubstr("accuracy_vs_sim_time.png"));
}

TEST(Report, EmptyFolderIsAClearError) {
  EXPECT_ERROR_WITH(core::write_report(temp_dir("report_empty"), {}), "no finished runs");
}

}  // namespace
}  // namespace phalanx::test
