// Sweeps (grid x seeds, parallel processes, resume) and reports.
#include "phalanx/core/experiment/sweep.hpp"

#include <algorithm>
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

TEST(Sweep, AWholeSectionThatDropsTheBasesCoreKeysIsWarnedAbout) {
  // The first confirmation run of configs/byzsgdnm/confirm_at_best_lr.yaml lost its cosine schedule this way.
  const char* yaml =
      "optimizer: {name: byzsgdnm, lr: 0.1, schedule: cosine, beta: 0.9}\n"
      "aggregator: {name: cc, tau: 0.1}\n"
      "sweep:\n"
      "  variants:\n"
      "    - {optimizer: {name: byzsgdm, lr: 0.03}}\n"
      "    - {optimizer.name: byzsgdm, optimizer.lr: 0.03}\n"
      "  aggregator: [{name: cm}]\n";
  const auto runs = core::expand_sweep(core::parse_yaml(yaml, "w.yaml"));
  ASSERT_EQ(runs.size(), 2u);
  ASSERT_EQ(runs[0].warnings.size(), 1u);
  // The schedule is a core key; beta is byzsgdnm's own and tau cc's own (a plugin change may well drop them).
  EXPECT_NE(runs[0].warnings[0].find("w.yaml:5"), std::string::npos) << runs[0].warnings[0];
  EXPECT_NE(runs[0].warnings[0].find("'optimizer' replaces the whole section and drops the base's schedule "),
            std::string::npos)
      << runs[0].warnings[0];
  EXPECT_TRUE(runs[1].warnings.empty());
  EXPECT_EQ(runs[1].config.find("optimizer")->find("schedule")->to_string(), "cosine");
}

TEST(Sweep, BadSeedsAndGridAreClear) {
  EXPECT_ERROR_WITH(core::expand_sweep(core::parse_yaml("seeds: [1, x]\n", "s.yaml")), "s.yaml:1", "seeds must be");
  EXPECT_ERROR_WITH(core::expand_sweep(core::parse_yaml("sweep: [1, 2]\n", "s.yaml")), "'sweep' must map");
  EXPECT_ERROR_WITH(core::expand_sweep(core::parse_yaml("sweep: {optimizer.lr: []}\n", "s.yaml")), "non-empty list");
}

// run_phalanx (tests/support.hpp) in the shape these assertions read best: the exit code returned, the
// output through `out`.
int phalanx(const std::string& args, std::string* out) {
  int code = 0;
  *out = run_phalanx(args, &code);
  return code;
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

// Everything of a summary.json but its wall-clock times (the "wall_time" line and the "time" breakdown).
std::string summary_without_times(const std::string& dir) {
  std::string text = read_file(dir + "/summary.json");
  text = text.substr(0, text.find("\"time\""));
  const std::size_t wall = text.find("\"wall_time\"");
  return wall == std::string::npos ? text : text.erase(wall, text.find('\n', wall) - wall);
}

// A sweep forks its runs from the process that checked them, so they inherit its plugins and its cached
// data sets (data_cache.hpp); each must still equal the run a fresh `phalanx run` of its input.yaml gives.
TEST(Sweep, ForkedRunsEqualFreshRunsOfTheirInput) {
  const std::string dir = temp_dir("sweep_forked");
  write_file(dir + "/s.yaml", R"(name: fk
data: {name: synthetic, train_size: 400, test_size: 100}
model: {name: mlp, hidden: [16]}
workers: {count: 6, byzantine: 1}
optimizer: {name: byzsgdnm, lr: 0.1}
aggregator: {name: cm}
attack: {name: alie}
training: {batch_size: 8, budget: {steps: 20}, eval_every: 10, threads: 2}
sweep: {data.partition: [iid, {name: dirichlet, alpha: 0.5}], aggregator: [{name: cm}, {name: krum}]}
seeds: [1]
)");
  std::string out;
  ASSERT_EQ(phalanx("sweep " + dir + "/s.yaml --no-plots -q --jobs 2 --out " + dir + "/sweep", &out), 0) << out;
  for (const auto& run : core::expand_sweep(core::load_yaml_file(dir + "/s.yaml"))) {
    const std::string swept = dir + "/sweep/" + run.label, fresh = dir + "/fresh/" + run.label;
    ASSERT_EQ(phalanx("run " + swept + "/input.yaml -q --out " + fresh, &out), 0) << out;
    EXPECT_EQ(metrics_without_wall_time(swept), metrics_without_wall_time(fresh)) << run.label;
    EXPECT_EQ(summary_without_times(swept), summary_without_times(fresh)) << run.label;
    EXPECT_THAT(read_file(swept + "/console.txt"), ::testing::HasSubstr("final: step 20")) << run.label;
  }
}

// A mean without defence diverging under a huge bit-flip is a result of the sweep, not a failure of it.
TEST(Sweep, DivergedRunsAreOutcomesNotFailures) {
  const std::string dir = temp_dir("sweep_diverged");
  write_file(dir + "/s.yaml", R"(name: dv
data: {name: synthetic, train_size: 200, test_size: 100}
model: {name: mlp, hidden: [8]}
workers: {count: 4, byzantine: 1}
optimizer: {name: sgd, lr: 0.1}
aggregator: {name: mean}
training: {batch_size: 8, budget: {steps: 30}, eval_every: 10}
sweep: {attack: [{name: none}, {name: bitflip, scale: 1.0e+30}]}
)");
  std::string out;
  ASSERT_EQ(phalanx("sweep " + dir + "/s.yaml --no-plots --out " + dir + "/runs", &out), 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("2 finished (1 diverged), 0 already done, 0 failed")) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("diverged;")) << out;
  EXPECT_THAT(out, ::testing::Not(::testing::HasSubstr("FAILED"))) << out;
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

TEST(SweepShard, ParsesSlicesAndRefusesBadOnes) {
  const core::Shard s = core::parse_shard("2/5");
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 5);
  EXPECT_ERROR_WITH(core::parse_shard("5/5"), "i must be from 0 to 4", "numbered from 0");
  EXPECT_ERROR_WITH(core::parse_shard("0/0"), "N must be at least 1");
  for (const char* bad : {"1", "a/4", "1/", "-1/4", "1/4/2", ""})
    EXPECT_ERROR_WITH(core::parse_shard(bad), "--shard expects i/N");
}

TEST(SweepShard, SlurmArrayTasksCountFromTheArraysFirstId) {
  EXPECT_FALSE(core::shard_from_slurm(nullptr, "4", nullptr).has_value());
  EXPECT_FALSE(core::shard_from_slurm("1", nullptr, nullptr).has_value());
  auto s = core::shard_from_slurm("3", "4", "0");  // --array=0-3
  ASSERT_TRUE(s);
  EXPECT_EQ(s->index, 3);
  EXPECT_EQ(s->count, 4);
  s = core::shard_from_slurm("4", "4", "1");  // --array=1-4
  ASSERT_TRUE(s);
  EXPECT_EQ(s->index, 3);
  EXPECT_ERROR_WITH(core::shard_from_slurm("6", "4", "0"), "SLURM_ARRAY_TASK_ID=6", "--array=0-3");
  EXPECT_ERROR_WITH(core::shard_from_slurm("x", "4", nullptr), "give --shard i/N explicitly");
}

TEST(SweepShard, SlicesAreDisjointAndCoverTheSweep) {
  const auto runs = core::expand_sweep(core::parse_yaml(kSweep, "s.yaml"));
  std::vector<std::string> seen;
  for (int i = 0; i < 3; ++i) {
    const auto mine = core::runs_of_shard(runs, {i, 3});
    EXPECT_GE(mine.size(), 5u);  // 16 runs: 6, 5, 5
    for (const auto& r : mine) seen.push_back(r.label);
  }
  std::vector<std::string> all;
  for (const auto& r : runs) all.push_back(r.label);
  std::sort(seen.begin(), seen.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(seen, all);
}

TEST(SweepShard, ShardsAsSeparateProcessesEqualTheWholeSweep) {
  const std::string dir = temp_dir("sweep_shards");
  write_file(dir + "/s.yaml", R"(name: sh
data: {name: synthetic, train_size: 200, test_size: 100}
model: {name: logreg}
workers: {count: 4, byzantine: 1}
optimizer: {name: byzsgdnm, lr: 0.1}
attack: {name: bitflip, scale: 10}
training: {batch_size: 8, budget: {steps: 12}, eval_every: 6}
sweep: {aggregator: [{name: cm}, {name: mean}], optimizer.lr: [0.05, 0.2]}
seeds: [1, 2]
report: {best_over: [optimizer.lr]}
)");
  std::string out;
  ASSERT_EQ(phalanx("sweep " + dir + "/s.yaml --no-plots -q --out " + dir + "/whole", &out), 0) << out;
  // Shard 0 by flag, shard 1 as the second task of a SLURM array, at the same time into one folder.
  const std::string sweep = test::phalanx_binary() + " sweep " + dir + "/s.yaml -q --out " + dir + "/sharded";
  ASSERT_EQ(run_command("(" + sweep + " --shard 0/2 > " + dir + "/s0.txt 2>&1 & SLURM_ARRAY_TASK_ID=1 "
                        "SLURM_ARRAY_TASK_COUNT=2 " + sweep + " > " + dir + "/s1.txt 2>&1; r1=$?; wait $!; "
                        "r0=$?; exit $((r0 + r1)))", &out), 0)
      << read_file(dir + "/s0.txt") << read_file(dir + "/s1.txt");
  EXPECT_THAT(read_file(dir + "/s0.txt"), ::testing::HasSubstr("sweep shard 0/2: 4 finished"));
  EXPECT_THAT(read_file(dir + "/s1.txt"), ::testing::HasSubstr("sweep shard 1/2: 4 finished"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/sharded/report.md")) << "a shard leaves the report to the end";
  for (const auto& run : core::expand_sweep(core::load_yaml_file(dir + "/s.yaml"))) {
    EXPECT_EQ(metrics_without_wall_time(dir + "/sharded/" + run.label),
              metrics_without_wall_time(dir + "/whole/" + run.label)) << run.label;
    EXPECT_EQ(summary_without_times(dir + "/sharded/" + run.label), summary_without_times(dir + "/whole/" + run.label))
        << run.label;
  }
  std::string whole, sharded;
  ASSERT_EQ(phalanx("report " + dir + "/whole --no-plots", &whole), 0) << whole;
  ASSERT_EQ(phalanx("report " + dir + "/sharded --no-plots", &sharded), 0) << sharded;
  EXPECT_THAT(sharded, ::testing::HasSubstr("best optimizer.lr"));
  // Equal but for the title, "# Report: <folder>".
  EXPECT_EQ(sharded.substr(sharded.find('\n')), whole.substr(whole.find('\n')));
}

TEST(SweepShard, BadShardsAreUsageErrors) {
  const std::string dir = temp_dir("sweep_bad_shard");
  write_file(dir + "/s.yaml", kSweep);
  std::string out;
  EXPECT_EQ(phalanx("sweep " + dir + "/s.yaml --shard 2/2", &out), 2);
  EXPECT_THAT(out, ::testing::HasSubstr("--shard 2/2: i must be from 0 to 1"));
  EXPECT_EQ(run_command("SLURM_ARRAY_TASK_ID=9 SLURM_ARRAY_TASK_COUNT=4 SLURM_ARRAY_TASK_MIN=0 " +
                            test::phalanx_binary() + " sweep " + dir + "/s.yaml",
                        &out),
            2);
  EXPECT_THAT(out, ::testing::HasSubstr("use a contiguous array"));
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
