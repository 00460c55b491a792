// `phalanx report` on hand-made run folders: pivot tables with the worst case and rank, the best learning
// rate per cell flagged at the edge of its grid, the SVG figures and a self-contained report.html.
#include <cstdio>
#include <filesystem>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/experiment/report.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

// One finished run whose accuracy climbs linearly to `final_accuracy` over three evaluations.
void write_run(const std::string& dir, const std::string& config, double final_accuracy,
               const std::string& status = "ok") {
  std::filesystem::create_directories(dir);
  write_file(dir + "/config.yaml", "name: r\n" + config);
  write_file(dir + "/summary.json", "{\"status\": \"" + status + "\"}\n");
  std::string csv = "step,gradients,train_loss,test_accuracy\n";
  for (int k = 1; k <= 3; ++k)
    csv += std::to_string(10 * k) + "," + std::to_string(100 * k) + ",0.5," + std::to_string(final_accuracy * k / 3) + "\n";
  write_file(dir + "/metrics.csv", csv);
}

// Aggregators mean, cm and nnm+cm against attacks none and alie, at three learning rates and two seeds. The
// best learning rate is 0.5 everywhere but cm under alie, where it is 1 (the edge of the grid).
std::string write_sweep(const std::string& name) {
  const std::string dir = temp_dir(name);
  struct Agg { const char *label, *yaml; double none, alie; };
  const Agg aggs[] = {{"mean", "{name: mean, pre: []}", 0.90, 0.20},
                      {"cm", "{name: cm, pre: []}", 0.84, 0.70},
                      {"nnmcm", "{name: cm, pre: [{name: nnm}]}", 0.86, 0.76}};
  for (const Agg& a : aggs)
    for (const char* attack : {"none", "alie"})
      for (const char* lr : {"0.1", "0.5", "1"})
        for (int seed : {1, 2}) {
          const bool alie = std::string(attack) == "alie";
          double acc = alie ? a.alie : a.none;
          const bool edge_cell = alie && std::string(a.label) == "cm";
          if (std::string(lr) != (edge_cell ? "1" : "0.5")) acc -= 0.1;
          acc += seed == 1 ? -0.01 : 0.01;  // std over seeds 1.41 points
          write_run(dir + "/" + a.label + "_" + attack + "_" + lr + "/seed" + std::to_string(seed),
                    "seed: " + std::to_string(seed) + "\naggregator: " + a.yaml + "\nattack: {name: " + attack +
                        "}\noptimizer: {name: sgd, lr: " + lr + "}\n",
                    acc);
        }
  return dir;
}

core::ReportOptions best_lr() {
  core::ReportOptions options;
  options.plots = false;
  options.best_over = {"optimizer.lr"};
  return options;
}

TEST(ReportPivot, WorstCaseOverAttacksRanksTheAggregators) {
  const std::string md = core::write_report(write_sweep("report_pivot"), best_lr());
  EXPECT_THAT(md, ::testing::HasSubstr("| rank | | alie | none | worst case |"));
  // nnm in front of cm: worst case 76 (alie) beats cm's 70 and mean's 20, whatever their accuracy without attack.
  EXPECT_THAT(md, ::testing::HasSubstr("| 1 | nnm ∘ cm | 76.00 ± 1.41 (lr=0.5) | 86.00 ± 1.41 (lr=0.5) | **76.00 ± 1.41** |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| 2 | cm |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| 3 | mean | 20.00 ± 1.41 (lr=0.5) | 90.00 ± 1.41 (lr=0.5) | **20.00 ± 1.41** |"));
}

TEST(ReportPivot, BestLearningRateAtTheEdgeOfItsGridIsFlagged) {
  const std::string md = core::write_report(write_sweep("report_edge"), best_lr());
  EXPECT_THAT(md, ::testing::HasSubstr("| 2 | cm | 70.00 ± 1.41 (lr=1†) | 84.00 ± 1.41 (lr=0.5) | **70.00 ± 1.41** |"));
  EXPECT_THAT(md, ::testing::HasSubstr("† the best value is the smallest or largest one tried"));
  // The long table keeps its columns, now with the pre-aggregators apart.
  EXPECT_THAT(md, ::testing::HasSubstr("| aggregator | aggregator.pre | attack | best optimizer.lr | test accuracy (%) |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| cm | none | alie | 1† | 70.00 ± 1.41 |"));
}

// Two methods each over a grid of rates (optimizer.name and optimizer.lr both swept): the rate is searched per
// method, not folded into the optimizer's label where every rate would be a cell of its own.
TEST(ReportPivot, BestOverAKeyInsideAVaryingPluginSection) {
  const std::string dir = temp_dir("report_best_in_section");
  for (const char* method : {"sgd", "byzsgdnm"})
    for (const char* lr : {"0.1", "1", "10"}) {
      const bool best = std::string(lr) == (std::string(method) == "sgd" ? "0.1" : "1");
      write_run(dir + "/" + method + "_" + lr + "/seed1",
                std::string("seed: 1\noptimizer: {name: ") + method + ", lr: " + lr + "}\n", best ? 0.8 : 0.5);
    }
  const std::string md = core::write_report(dir, best_lr());
  EXPECT_THAT(md, ::testing::HasSubstr("| optimizer | best optimizer.lr | test accuracy (%) |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| byzsgdnm | 1 | 80.00 ± 0.00 |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| sgd | 0.1† | 80.00 ± 0.00 |"));
}

// A defence whose run diverged under an attack lost that cell, even where its other seed (or the last
// evaluation before the divergence) scored higher than every other rule.
TEST(ReportPivot, ACellWithADivergedSeedIsTheWorstCase) {
  const std::string dir = temp_dir("report_diverged");
  for (const char* agg : {"mean", "cm"})
    for (const char* attack : {"none", "alie"})
      for (int seed : {1, 2}) {
        const bool broken = std::string(agg) == "mean" && std::string(attack) == "alie";
        write_run(dir + "/" + agg + "_" + attack + "/seed" + std::to_string(seed),
                  "seed: " + std::to_string(seed) + "\naggregator: {name: " + agg + "}\nattack: {name: " + attack + "}\n",
                  broken ? 0.95 : 0.80, broken && seed == 2 ? "diverged" : "ok");
      }
  core::ReportOptions options;
  options.plots = false;
  const std::string md = core::write_report(dir, options);
  EXPECT_THAT(md, ::testing::HasSubstr("| 1 | cm | 80.00 ± 0.00 | 80.00 ± 0.00 | **80.00 ± 0.00** |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| 2 | mean | ✗ 1/2 diverged | 80.00 ± 0.00 | **✗ 1/2 diverged** |"));
  EXPECT_THAT(md, ::testing::HasSubstr("✗: a seed of this cell diverged or failed"));
  EXPECT_THAT(read_file(dir + "/report.html"), ::testing::HasSubstr("✗ 1/2 diverged"));
}

TEST(ReportFigures, CurvesHaveOnePanelPerAttackAndABandOverSeeds) {
  const std::string dir = write_sweep("report_curves");
  const std::string md = core::write_report(dir, best_lr());
  EXPECT_THAT(md, ::testing::HasSubstr("](plots/curves.svg)"));
  const std::string svg = read_file(dir + "/plots/curves.svg");
  EXPECT_THAT(svg, ::testing::StartsWith("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  for (const char* title : {">none</text>", ">alie</text>", ">nnm ∘ cm</text>"}) EXPECT_THAT(svg, ::testing::HasSubstr(title));
  // Three aggregators in two panels: six lines, each with its band (a polygon with fill-opacity).
  auto count = [&](const std::string& what) { return count_occurrences(svg, what); };
  EXPECT_EQ(count("<polyline"), 6u);
  EXPECT_EQ(count("<polygon"), 6u);
}

// One panel, three lines: every legend entry starts inside the figure (a legend of four entries per row was
// cut off at the right of a one-panel figure, so the third aggregator had no label).
TEST(ReportFigures, LegendFitsAOnePanelFigure) {
  const std::string dir = temp_dir("report_legend");
  for (const char* agg : {"mean", "cm", "krum"})
    write_run(dir + "/" + agg + "/seed1", std::string("seed: 1\naggregator: {name: ") + agg + "}\n", 0.7);
  core::ReportOptions options;
  options.plots = false;
  core::write_report(dir, options);
  const std::string svg = read_file(dir + "/plots/curves.svg");
  const int width = std::stoi(svg.substr(svg.find("width=\"") + 7));
  int entries = 0;
  for (auto at = svg.find("font-size=\"11\">"); at != std::string::npos; at = svg.find("font-size=\"11\">", at + 1)) {
    const std::size_t x = svg.rfind("<text x=\"", at);
    EXPECT_LT(std::stoi(svg.substr(x + 9)) + 40, width) << svg.substr(x, at - x + 30);
    ++entries;
  }
  EXPECT_EQ(entries, 3);
}

TEST(ReportFigures, HeatmapShowsTheWorstCaseOverAttacksForTwoKeys) {
  // Byzantine count x Dirichlet alpha with two attacks: each square is the lower of the two accuracies.
  const std::string dir = temp_dir("report_heatmap");
  for (int b : {1, 2})
    for (const char* alpha : {"0.1", "1"})
      for (const char* attack : {"none", "alie"}) {
        const double acc = 0.9 - 0.1 * b - (std::string(alpha) == "0.1" ? 0.2 : 0) - (std::string(attack) == "alie" ? 0.05 : 0);
        write_run(dir + "/b" + std::to_string(b) + alpha + attack + "/seed1",
                  "seed: 1\naggregator: {name: cm}\nattack: {name: " + std::string(attack) + "}\nworkers: {count: 8, byzantine: " +
                      std::to_string(b) + "}\ndata: {name: synthetic, partition: {name: dirichlet, alpha: " + alpha + "}}\n",
                  acc);
      }
  core::ReportOptions options;
  options.plots = false;
  const std::string md = core::write_report(dir, options);
  const std::string file = "heatmap_data.partition.alpha_workers.byzantine.svg";
  ASSERT_THAT(md, ::testing::HasSubstr("](plots/" + file + ")"));
  const std::string svg = read_file(dir + "/plots/" + file);
  // byzantine 2, alpha 0.1, under alie: 0.9 - 0.2 - 0.2 - 0.05 = 45 %; byzantine 1, alpha 1: 75 %.
  EXPECT_THAT(svg, ::testing::HasSubstr(">45</text>"));
  EXPECT_THAT(svg, ::testing::HasSubstr(">75</text>"));
  EXPECT_THAT(svg, ::testing::Not(::testing::HasSubstr(">80</text>")));  // the no-attack value is not the worst
  // One aggregator: the settings are the rows of the ranking, and one figure has their curves.
  EXPECT_THAT(md, ::testing::HasSubstr("| 1 | data.partition.alpha=1, workers.byzantine=1 | 75.00 ± 0.00 | 80.00 ± 0.00 | **75.00 ± 0.00** |"));
  EXPECT_THAT(md, ::testing::HasSubstr("| 4 | data.partition.alpha=0.1, workers.byzantine=2 |"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/plots/curves.svg"));
}

TEST(ReportHtml, SelfContainedWithTablesAndFiguresInline) {
  const std::string dir = write_sweep("report_html");
  core::write_report(dir, best_lr());
  const std::string html = read_file(dir + "/report.html");
  EXPECT_THAT(html, ::testing::StartsWith("<!DOCTYPE html>"));
  EXPECT_THAT(html, ::testing::HasSubstr("<table class=\"pivot\">"));
  EXPECT_THAT(html, ::testing::HasSubstr("<table class=\"cells\">"));
  EXPECT_THAT(html, ::testing::HasSubstr("<svg xmlns="));
  EXPECT_THAT(html, ::testing::HasSubstr("lr=1†"));
  // Nothing to fetch: no external script, style sheet or image.
  for (const char* fetch : {"src=", "href=", "<link", "@import", "url("}) EXPECT_THAT(html, ::testing::Not(::testing::HasSubstr(fetch)));
  EXPECT_TRUE(std::filesystem::exists(dir + "/report.md"));
}

TEST(ReportHtml, ConfigValuesAreNotMarkup) {
  // An edited config.yaml may hold anything; report.html shows it as text.
  const std::string dir = temp_dir("report_escape");
  for (const char* attack : {"none", "\"<i>x</i>&\""})
    write_run(dir + "/" + std::to_string(std::string(attack).size()) + "/seed1",
              "seed: 1\naggregator: {name: cm}\nattack: {name: " + std::string(attack) + "}\nworkers: {byzantine: 1}\n", 0.5);
  core::write_report(dir, best_lr());
  const std::string html = read_file(dir + "/report.html");
  EXPECT_THAT(html, ::testing::Not(::testing::HasSubstr("<i>x")));
  EXPECT_THAT(html, ::testing::HasSubstr("&lt;i&gt;x&lt;/i&gt;&amp;"));
}

TEST(ReportPivot, ValuesSortNumbersFirstThenText) {
  // A column mixing numbers and text (an edited config) sorts numbers by value, then text: a consistent order.
  const std::string dir = temp_dir("report_order");
  for (const char* v : {"abc", "10", "nan", "9"})
    write_run(dir + "/" + v + "/seed1", std::string("seed: 1\nnote: ") + v + "\n", 0.5);
  const std::string md = core::write_report(dir, best_lr());
  const auto at = [&](const char* row) { return md.find(row); };
  EXPECT_LT(at("| 9 |"), at("| 10 |"));
  EXPECT_LT(at("| 10 |"), at("| abc |"));
  EXPECT_LT(at("| abc |"), at("| nan |"));
  EXPECT_NE(at("| nan |"), std::string::npos);
}

TEST(ReportOptions, SectionKeysAndClearErrors) {
  const core::ReportOptions o = core::report_options_from(
      core::parse_yaml("{best_over: [optimizer.lr], heatmaps: [[workers.byzantine, data.partition.alpha]], pivot_rows: optimizer}", "report.yaml"));
  EXPECT_EQ(o.best_over, std::vector<std::string>{"optimizer.lr"});
  ASSERT_EQ(o.heatmaps.size(), 1u);
  EXPECT_EQ(o.heatmaps[0].second, "data.partition.alpha");
  EXPECT_EQ(o.pivot_rows, "optimizer");
  EXPECT_ERROR_WITH(core::report_options_from(core::parse_yaml("{heatmaps: [workers.byzantine]}", "report.yaml")), "pairs of keys");
  EXPECT_ERROR_WITH(core::report_options_from(core::parse_yaml("{best: [x]}", "report.yaml")), "report.best: unknown key (allowed:");
  EXPECT_EQ(core::report_options_from(core::parse_yaml("{target_accuracy: 80}", "report.yaml")).target_accuracy, 80.0);
  EXPECT_ERROR_WITH(core::report_options_from(core::parse_yaml("{target_accuracy: 0.8x}", "report.yaml")),
                    "report.yaml:1", "accuracy in percent");
  EXPECT_ERROR_WITH(core::report_options_from(core::parse_yaml("{target_accuracy: 180}", "report.yaml")), "at most 100");
}

TEST(ReportTables, ACoreKeyMissingFromOlderRunsReadsAsItsDefault) {
  // Runs recorded before engine.speed.comm existed lack it; a later run lists its default: one cell, not two.
  const std::string dir = temp_dir("report_core_default");
  write_run(dir + "/old/seed1", "seed: 1\nengine: {speed: {name: homogeneous}}\n", 0.80);
  write_run(dir + "/new/seed2", "seed: 2\nengine: {speed: {name: homogeneous, comm: 0.0}}\n", 0.90);
  write_run(dir + "/comm/seed1", "seed: 1\nengine: {speed: {name: homogeneous, comm: 1.0}}\n", 0.70);
  core::ReportOptions options;
  options.plots = false;
  const std::string md = core::write_report(dir, options);
  EXPECT_NE(md.find("| engine.speed.comm |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 0.0 | 85.00 ± 7.07 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 1.0 | 70.00 ± 0.00 |"), std::string::npos) << md;
}

TEST(ReportTables, GradientsToTheTargetAccuracyCountOnlySeedsThatReachedIt) {
  // Accuracy climbs linearly over three evaluations at 100, 200 and 300 gradients: a run ending at 90 % first
  // reaches 55 % at its second evaluation (60 %), one ending at 60 % at its third, one ending at 45 % never.
  const std::string dir = temp_dir("report_to_target");
  write_run(dir + "/fast/seed1", "seed: 1\noptimizer: {name: ormo}\n", 0.90);
  write_run(dir + "/fast/seed2", "seed: 2\noptimizer: {name: ormo}\n", 0.60);
  write_run(dir + "/slow/seed1", "seed: 1\noptimizer: {name: asgd}\n", 0.60);
  write_run(dir + "/slow/seed2", "seed: 2\noptimizer: {name: asgd}\n", 0.45);
  write_run(dir + "/never/seed1", "seed: 1\noptimizer: {name: sgd}\n", 0.45);
  core::ReportOptions options;
  options.plots = false;
  options.target_accuracy = 55;
  const std::string md = core::write_report(dir, options);
  EXPECT_NE(md.find("| gradients to 55 % |"), std::string::npos) << md;
  EXPECT_NE(md.find("| ormo | 75.00 ± 21.21 | 0.5000 ± 0.0000 | 250 ± 71 | 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| asgd | 52.50 ± 10.61 | 0.5000 ± 0.0000 | 300 ± 0 (1/2) | 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| sgd | 45.00 ± 0.00 | 0.5000 ± 0.0000 | not reached | 1 |"), std::string::npos) << md;
}

}  // namespace
}  // namespace phalanx::test
