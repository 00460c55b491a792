// The synchronous engine end to end: determinism, outputs, hostile messages, divergence, and the CLI.
#include "phalanx/core/engine/sync_engine.hpp"
#include "phalanx/core/engine/async_engine.hpp"

#include <filesystem>
#include <sstream>

#include <ATen/ATen.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"

#include "small_run.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

const char* kSmall = R"(name: small
seed: 5
data: {name: synthetic, train_size: 600, test_size: 200, features: 10, classes: 3, partition: {name: dirichlet, alpha: 1.0}}
model: {name: mlp, hidden: [16]}
workers: {count: 6, byzantine: 2}
optimizer: {name: byzsgdnm, lr: 0.1, schedule: cosine}
aggregator: {name: cc, tau: 1.0}
attack: {name: alie}
training: {batch_size: 8, budget: {steps: 60}, eval_every: 20}
)";

TEST(SyncEngine, SameSeedGivesIdenticalMetrics) {
  const std::string a = temp_dir("det_a"), b = temp_dir("det_b");
  core::run_sync(resolve_config(kSmall), builtin_registry(), a, nullptr);
  core::run_sync(resolve_config(kSmall), builtin_registry(), b, nullptr);
  const std::string ma = metrics_without_wall_time(a);
  EXPECT_EQ(std::count(ma.begin(), ma.end(), '\n'), 3);
  EXPECT_EQ(ma, metrics_without_wall_time(b));
}

TEST(SyncEngine, DifferentSeedGivesDifferentMetrics) {
  Value other = core::parse_yaml(kSmall, "t.yaml");
  core::set_path(other, "seed", Value(6));
  const std::string a = temp_dir("seed_a"), b = temp_dir("seed_b");
  core::run_sync(resolve_config(kSmall), builtin_registry(), a, nullptr);
  core::run_sync(core::resolve_pipeline(other, builtin_registry()), builtin_registry(), b, nullptr);
  EXPECT_NE(metrics_without_wall_time(a), metrics_without_wall_time(b));
}

// The workers' gradients run on training.threads threads; every row must be the same for any count
// (3 threads for 6 workers also checks an uneven share, and the attack reads the messages they produce).
TEST(SyncEngine, ThreadCountDoesNotChangeAnyMetric) {
  std::string reference;
  for (int threads : {1, 2, 3}) {
    Value config = core::parse_yaml(kSmall, "t.yaml");
    core::set_path(config, "training.threads", Value(threads));
    // Seven test batches (the last one short), so the evaluation is shared between the threads too.
    core::set_path(config, "training.eval_batch_size", Value(30));
    const std::string dir = temp_dir("threads_" + std::to_string(threads));
    core::RunResult r = core::run_sync(core::resolve_pipeline(config, builtin_registry()), builtin_registry(), dir, nullptr);
    ASSERT_EQ(r.status, core::RunStatus::ok) << r.message;
    const std::string metrics = metrics_without_wall_time(dir);
    EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 3);
    if (threads == 1) reference = metrics;
    EXPECT_EQ(metrics, reference) << threads << " threads";
  }
}

TEST(SyncEngine, WritesEveryOutputFile) {
  const std::string dir = temp_dir("outputs");
  core::RunResult r = core::run_sync(resolve_config(kSmall), builtin_registry(), dir, nullptr);
  EXPECT_EQ(r.status, core::RunStatus::ok);
  EXPECT_EQ(r.last.step, 60);
  EXPECT_EQ(r.last.gradients, 60 * 4 * 8);  // steps x honest workers x batch
  const std::string csv = read_file(dir + "/metrics.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "step,epoch,gradients,wall_time,lr,train_loss,test_loss,test_accuracy,nonfinite_messages,sim_time,"
            "staleness_mean,staleness_max,rejected_messages,missing_messages,honest_deviation,honest_cosine,"
            "cc.clipped");  // the aggregator's declared diagnostic follows the fixed columns
  EXPECT_THAT(read_file(dir + "/summary.json"), ::testing::HasSubstr("\"status\": \"ok\""));
  // config.yaml is complete: it runs as is and resolves to the same configuration.
  Value written = core::load_yaml_file(dir + "/config.yaml");
  EXPECT_EQ(core::to_yaml(core::resolve_pipeline(written, builtin_registry()).resolved),
            core::to_yaml(resolve_config(kSmall).resolved));
}

TEST(SyncEngine, RecordsHowFarTheAggregateIsFromTheHonestMean) {
  auto run = [](const std::string& overrides) {
    std::vector<std::string> each;
    std::stringstream in(overrides);
    for (std::string o; std::getline(in, o, ';');) each.push_back(o);
    return core::run_sync(resolve_config(kSmall, each), builtin_registry(), "", nullptr).last;
  };
  // The mean of honest rows only is the honest mean (up to float32 rounding of the aggregate).
  core::MetricsRow honest = run("workers.byzantine=0;aggregator={name: mean};training.budget={steps: 20}");
  EXPECT_LT(honest.honest_deviation, 1e-5);
  EXPECT_GT(honest.honest_cosine, 1 - 1e-6);
  // Two of six workers sending -10 times their message drag the mean far off (about -16/6 of it), backwards.
  core::MetricsRow attacked =
      run("aggregator={name: mean};attack={name: bitflip, scale: 10};training.budget={steps: 20}");
  EXPECT_GT(attacked.honest_deviation, 2.0);
  EXPECT_LT(attacked.honest_cosine, 0.0);
}

TEST(SyncEngine, LearnsTheSyntheticTaskWithoutAttack) {
  Value root = core::parse_yaml(kSmall, "t.yaml");
  core::set_path(root, "attack", core::parse_yaml("{name: none}", "t"));
  core::set_path(root, "training.budget", core::parse_yaml("{steps: 150}", "t"));
  core::RunResult r = core::run_sync(core::resolve_pipeline(root, builtin_registry()), builtin_registry(), "", nullptr);
  EXPECT_GT(r.last.test_accuracy, 0.8);
}

// The built-in plugins plus the inline library `register_plugins` (a registry that lives as long as the tests).
core::Registry* builtins_plus(const std::string& library_name, void (*register_plugins)(void*)) {
  auto* reg = new core::Registry();
  reg->load_directory(test::builtin_plugin_dir());
  reg->register_inline(library_name, register_plugins);
  return reg;
}

// A registry with the built-ins plus an attack that sends NaN and Inf, as a Byzantine worker may.
const core::Registry& registry_with_nan_attack() {
  static core::Registry* r = builtins_plus("test_attacks", [](void* registrar) {
    struct NonFinite : Attack {
      at::Tensor craft(const AttackRound& round) override {
        at::Tensor out = at::full_like(round.byzantine_true, std::numeric_limits<float>::quiet_NaN());
        out[0].fill_(std::numeric_limits<float>::infinity());
        return out;
      }
    };
    static_cast<Registrar*>(registrar)->add_attack(
        {"nonfinite", "NaN and Inf", {}}, [](const Params&, const Context&) { return std::make_unique<NonFinite>(); });
  });
  return *r;
}

// Two attacks that send minus the honest mean and note whether the Byzantine rows they were handed are still
// what they sent the round before (zeros before the first) or all zeros: rows nobody computed. One promises
// (Need::ByzantineShapeOnly) not to read those rows, the other does not.
struct ByzantineRowsSeen {
  int rounds = 0, stale_rounds = 0, zero_rounds = 0;
};
ByzantineRowsSeen g_promised, g_unpromised;

const core::Registry& registry_with_probing_attacks() {
  static core::Registry* r = builtins_plus("probing_attacks", [](void* registrar) {
    struct MinusMean : Attack {
      explicit MinusMean(ByzantineRowsSeen& seen) : seen(seen) {}
      at::Tensor craft(const AttackRound& round) override {
        ++seen.rounds;
        if (!sent.defined()) sent = at::zeros_like(round.byzantine_true);
        seen.stale_rounds += at::equal(round.byzantine_true, sent) ? 1 : 0;
        seen.zero_rounds += round.byzantine_true.count_nonzero().item<std::int64_t>() == 0 ? 1 : 0;
        at::Tensor row = round.honest.mean(0).neg_();
        sent = row.unsqueeze(0).expand({round.byzantine_true.size(0), row.size(0)}).contiguous();
        return sent;
      }
      ByzantineRowsSeen& seen;
      at::Tensor sent;
    };
    auto* add = static_cast<Registrar*>(registrar);
    add->add_attack({"minus_mean_promised", "test", {}, {}, {Need::ByzantineShapeOnly}},
                    [](const Params&, const Context&) { return std::make_unique<MinusMean>(g_promised); });
    add->add_attack({"minus_mean", "test", {}}, [](const Params&, const Context&) {
      return std::make_unique<MinusMean>(g_unpromised);
    });
  });
  return *r;
}

// An attack that promises to read only the shape of the Byzantine messages gets rows nobody computed there
// (the engine skips those workers' gradients), and the run's metrics are exactly those of the same attack without
// the promise, at one thread and at two.
TEST(SyncEngine, ByzantineGradientsAreSkippedWhenTheAttackReadsOnlyTheirShape) {
  const auto& reg = registry_with_probing_attacks();
  g_promised = g_unpromised = {};
  for (int threads : {1, 2}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    std::string metrics[2];
    for (int promised = 0; promised < 2; ++promised) {
      Value root = core::parse_yaml(kSmall, "t.yaml");
      core::set_path(root, "attack", core::parse_yaml(promised ? "minus_mean_promised" : "minus_mean", "t"));
      core::set_path(root, "training.threads", Value(threads));
      const std::string dir = temp_dir("shape_only_" + std::to_string(threads) + std::to_string(promised));
      core::RunResult r = core::run_sync(core::resolve_pipeline(root, reg), reg, dir, nullptr);
      ASSERT_EQ(r.status, core::RunStatus::ok) << r.message;
      metrics[promised] = metrics_without_wall_time(dir);
    }
    EXPECT_EQ(metrics[1], metrics[0]);
  }
  EXPECT_EQ(g_promised.rounds, 2 * 60);
  EXPECT_EQ(g_promised.stale_rounds, 2 * 60);
  EXPECT_EQ(g_unpromised.rounds, 2 * 60);
  EXPECT_EQ(g_unpromised.stale_rounds, 0);
}

// The same in the asynchronous engine, unbuffered (the attack rewrites each Byzantine arrival alone) and
// buffered (with the defence's round context): a Byzantine worker that is not computed delivers a zero row.
TEST(AsyncEngine, ByzantineGradientsAreSkippedWhenTheAttackReadsOnlyTheirShape) {
  const auto& reg = registry_with_probing_attacks();
  for (int buffer : {1, 3}) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE("buffer " + std::to_string(buffer) + ", " + std::to_string(threads) + " threads");
      g_promised = g_unpromised = {};
      std::string metrics[2];
      for (int promised = 0; promised < 2; ++promised) {
        Value root = core::parse_yaml(kSmall, "t.yaml");
        core::set_path(root, "engine", core::parse_yaml("{name: async, buffer: " + std::to_string(buffer) +
                                                            ", speed: {name: gamma, shape: 4, spread: 0.5}}", "t"));
        core::set_path(root, "aggregator", core::parse_yaml(buffer > 1 ? "{name: cm}" : "{name: mean}", "t"));
        core::set_path(root, "attack", core::parse_yaml(promised ? "minus_mean_promised" : "minus_mean", "t"));
        core::set_path(root, "training.threads", Value(threads));
        const std::string dir = temp_dir("async_shape_only_" + std::to_string(promised));
        core::RunResult r = core::run_async(core::resolve_pipeline(root, reg), reg, dir, nullptr);
        ASSERT_EQ(r.status, core::RunStatus::ok) << r.message;
        metrics[promised] = metrics_without_wall_time(dir);
      }
      EXPECT_EQ(metrics[1], metrics[0]);
      EXPECT_GT(g_promised.rounds, 10);
      EXPECT_EQ(g_promised.rounds, g_unpromised.rounds);
      EXPECT_EQ(g_promised.zero_rounds, g_promised.rounds);
      EXPECT_EQ(g_unpromised.zero_rounds, 0);
    }
  }
}

TEST(SyncEngine, NonFiniteMessagesDoNotPoisonARobustAggregator) {
  for (const char* agg : {"cm", "cc"}) {
    Value root = core::parse_yaml(kSmall, "t.yaml");
    core::set_path(root, "attack", core::parse_yaml("{name: nonfinite}", "t"));
    core::set_path(root, "aggregator", core::parse_yaml(std::string("{name: ") + agg + "}", "t"));
    core::set_path(root, "training.budget", core::parse_yaml("{steps: 150}", "t"));
    const auto& reg = registry_with_nan_attack();
    core::RunResult r = core::run_sync(core::resolve_pipeline(root, reg), reg, "", nullptr);
    EXPECT_EQ(r.status, core::RunStatus::ok) << agg;
    EXPECT_EQ(r.last.nonfinite_messages, 150 * 2) << agg;
    EXPECT_GT(r.last.test_accuracy, 0.8) << agg;
  }
}

TEST(SyncEngine, NonFiniteMessagesStopTheMeanWithAClearError) {
  Value root = core::parse_yaml(kSmall, "t.yaml");
  core::set_path(root, "attack", core::parse_yaml("{name: nonfinite}", "t"));
  core::set_path(root, "aggregator", core::parse_yaml("{name: mean}", "t"));
  const auto& reg = registry_with_nan_attack();
  EXPECT_ERROR_WITH(core::run_sync(core::resolve_pipeline(root, reg), reg, "", nullptr), "aggregator 'mean'",
                    "NaN or Inf");
}

TEST(SyncEngine, DivergenceEndsTheRunWithStatusNotACrash) {
  Value root = core::parse_yaml(kSmall, "t.yaml");
  core::set_path(root, "optimizer", core::parse_yaml("{name: sgd, lr: 1.0e+30}", "t"));
  core::set_path(root, "aggregator", core::parse_yaml("{name: mean}", "t"));
  core::set_path(root, "attack", core::parse_yaml("{name: bitflip, scale: 1.0e+30}", "t"));
  const std::string dir = temp_dir("diverged");
  core::RunResult r = core::run_sync(core::resolve_pipeline(root, builtin_registry()), builtin_registry(), dir, nullptr);
  EXPECT_EQ(r.status, core::RunStatus::diverged);
  EXPECT_THAT(r.message, ::testing::HasSubstr("non-finite"));
  EXPECT_THAT(read_file(dir + "/summary.json"), ::testing::HasSubstr("\"status\": \"diverged\""));
}

TEST(SyncEngine, UnwritableOutputFolderIsAClearError) {
  const std::string dir = temp_dir("unwritable");
  write_file(dir + "/file", "x");
  EXPECT_ERROR_WITH(core::run_sync(resolve_config(kSmall), builtin_registry(), dir + "/file/run", nullptr),
                    "cannot create output folder", "--out");
}

// ---- the command line, as a user runs it ----

TEST(Cli, EndToEndRunOnFashionMnist) {
  const std::string dir = temp_dir("cli_e2e");
  write_file(dir + "/e2e.yaml", R"(name: e2e
data: {name: fashion_mnist, limit: {train: 8000, test: 2000}}
model: {name: mlp, hidden: [64]}
workers: {count: 8, byzantine: 3}
optimizer: {name: byzsgdnm, lr: 0.1, schedule: cosine}
aggregator: {name: cc, tau: 1.0}
attack: {name: bitflip, scale: 10}
training: {batch_size: 32, budget: {epochs: 2}, eval_every: 20}
)");
  int code = 0;
  std::string out = run_phalanx("run " + dir + "/e2e.yaml --out " + dir + "/run", &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("final: step 63"));
  for (const char* f : {"metrics.jsonl", "metrics.csv", "config.yaml", "summary.json", "log.txt"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/run/" + f)) << f;
  const std::string summary = read_file(dir + "/run/summary.json");
  auto pos = summary.find("\"test_accuracy\": ");
  ASSERT_NE(pos, std::string::npos);
  EXPECT_GT(std::stod(summary.substr(pos + 17)), 0.6) << summary;  // 70 % measured; chance is 10 %
}

TEST(Cli, CompareRunsEveryVariantAndPrintsATable) {
  const std::string dir = temp_dir("cli_compare");
  write_file(dir + "/cmp.yaml", std::string(kSmall) + "compare:\n  aggregator: [{name: mean}, {name: cm}]\n"
                                                      "  attack: [{name: none}, {name: bitflip, scale: 10}]\n");
  int code = 0;
  std::string out =
      run_phalanx("run " + dir + "/cmp.yaml --out " + dir + "/runs --set training.budget.steps=20", &code);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("| attack \\ aggregator | mean | cm |"));
  EXPECT_THAT(out, ::testing::HasSubstr("| bitflip-scale10 |"));
  for (const char* v : {"mean_none", "mean_bitflip-scale10", "cm_none", "cm_bitflip-scale10"})
    EXPECT_TRUE(std::filesystem::exists(dir + "/runs/" + v + "/metrics.csv")) << v;
  EXPECT_TRUE(std::filesystem::exists(dir + "/runs/comparison.md"));
  // It ends by naming the report, whose pivot table ranks the two aggregators by their worst case.
  EXPECT_THAT(out, ::testing::HasSubstr(dir + "/runs/report.html\n"));
  EXPECT_THAT(read_file(dir + "/runs/report.html"), ::testing::HasSubstr("<table class=\"pivot\">"));
}

TEST(Cli, ValidateReportsFileAndLine) {
  const std::string dir = temp_dir("cli_validate");
  write_file(dir + "/bad.yaml", "name: bad\ndata: {name: synthetic}\nmodel: {name: mlp}\naggregator: {name: cc, tua: 1}\n");
  int code = 0;
  std::string out = run_phalanx("validate " + dir + "/bad.yaml", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, ::testing::HasSubstr("bad.yaml:4"));
  EXPECT_THAT(out, ::testing::HasSubstr("did you mean 'tau'?"));
  write_file(dir + "/good.yaml", kSmall);
  out = run_phalanx("validate " + dir + "/good.yaml", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("OK"));
}

TEST(Cli, PluginsListsParametersWithDefaults) {
  int code = 0;
  std::string out = run_phalanx("plugins aggregator", &code);
  EXPECT_EQ(code, 0);
  EXPECT_THAT(out, ::testing::HasSubstr("cc  -  centered clipping"));
  EXPECT_THAT(out, ::testing::HasSubstr("tau (number, default 0.1)"));
  EXPECT_THAT(out, ::testing::Not(::testing::HasSubstr("models:")));
  out = run_phalanx("plugins nonsense", &code);
  EXPECT_EQ(code, 2);
  // The core's own keys, printed like a plugin's (core/src/config/core_params.cpp).
  out = run_phalanx("plugins core", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, ::testing::HasSubstr("  data.partition  -  "));
  EXPECT_THAT(out, ::testing::HasSubstr("lr (number, default 0.1)"));
}

TEST(Cli, PluginPathFromEnvironmentIsSearched) {
  int code = 0;
  std::string out = run_phalanx("plugins aggregator", &code);
  EXPECT_THAT(out, ::testing::Not(::testing::HasSubstr("throws_on_create")));
  out.clear();
  code = run_command("PHALANX_PLUGIN_PATH=/nonexistent:" + test::test_plugin_dir() + " " +
                         test::phalanx_binary() + " plugins aggregator",
                     &out);
  // The test folder holds plugins the loader must refuse: the first refusal is reported, naming the file.
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, ::testing::HasSubstr("test_"));
}

TEST(Cli, UsageErrors) {
  int code = 0;
  std::string out = run_phalanx("frobnicate", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, ::testing::HasSubstr("unknown command 'frobnicate'"));
  out = run_phalanx("run", &code);
  EXPECT_EQ(code, 2);
  out = run_phalanx("run /nonexistent.yaml", &code);
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, ::testing::HasSubstr("cannot read config file"));
}

}  // namespace
}  // namespace phalanx::test
