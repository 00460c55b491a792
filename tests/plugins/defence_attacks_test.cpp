// The attacks that search against the defence through the oracle (opt_alie, opt_ipm: ByzFL's line search;
// agr_minmax, agr_minsum: the AGR-tailored halving search of Shejwalkar and Houmansadr 2021). Reference values
// come from tests/reference/attacks_reference.py: ByzFL's own Optimal_ALittleIsEnough and
// Optimal_InnerProductManipulation, unmodified, with ByzFL's TrMean / Median / NNM / Clipping as the defence,
// and a transcription of the paper's search for the tailored attacks, which the script checks against the
// paper's released functions (our_attack_trmean, our_attack_dist, our_attack_score). Definitional notes: ByzFL
// searches against the defence it is given (by default Average after Clipping), the plugins always against the
// run's (the tests give both the same one); ByzFL ran on float64 arrays here, the oracle takes float32 rows,
// and the searches still take the same path (agreement to 1e-5 relative). The paper's notebooks put the
// Byzantine rows first, the oracle after the honest ones; the trimmed mean used here does not depend on it. Then: the real defence's state (centered
// clipping's centre, bucketing's generator, FoolsGold's histories) is untouched by their queries, and they run
// in the sync and async simulations.
#include <ATen/ATen.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine/round_parts.hpp"
#include "phalanx/core/engine/sync_engine.hpp"
#include "small_run.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

/// Stateless pre-aggregators + aggregator of this build as a defence, counting its calls.
class ChainOracle : public DefenceOracle {
 public:
  ChainOracle(std::int64_t n, std::int64_t b, const std::vector<std::pair<std::string, std::string>>& pre,
              const std::string& aggregator, const std::string& params)
      : context_(make_context(n, b)) {
    for (const auto& [name, yaml] : pre)
      pre_.push_back(builtin_registry().make_preaggregator(
          name, params_for(core::Kind::PreAggregator, name, yaml), *context_));
    aggregator_ = builtin_registry().make_aggregator(aggregator, params_for(core::Kind::Aggregator, aggregator, params),
                                                     *context_);
  }
  at::Tensor evaluate(const at::Tensor& rows) const override {
    ++calls;
    at::Tensor x = rows;
    for (const auto& p : pre_) x = p->transform(x);
    return aggregator_->aggregate(x);
  }
  mutable int calls = 0;

 private:
  std::unique_ptr<core::RunContext> context_;
  std::vector<std::shared_ptr<PreAggregator>> pre_;
  std::shared_ptr<Aggregator> aggregator_;
};

/// The b Byzantine rows `attack` crafts against `oracle` for these honest rows; each must be the same row.
at::Tensor craft_one(const std::string& attack, const std::string& params, const at::Tensor& honest, std::int64_t b,
                     const DefenceOracle& oracle) {
  AttackRound round;
  round.honest = honest;
  round.byzantine_true = at::zeros({b, honest.size(1)});
  round.defence = &oracle;
  at::Tensor out = make_attack(attack, params, honest.size(0) + b, b)->craft(round);
  EXPECT_EQ(out.sizes(), at::IntArrayRef({b, honest.size(1)}));
  for (std::int64_t i = 1; i < b; ++i) EXPECT_TRUE(at::equal(out[i], out[0]));
  return out[0];
}

const at::Tensor& byzfl_example() {
  static const at::Tensor x = matrix(3, 3, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  return x;
}

// 6 x 5, shifted by 0.5 (attacks_reference.py, "honest 6x5 rows").
const at::Tensor& honest_rows() {
  static const at::Tensor x = matrix(
      6, 5, {-0.731664956, 0.767118931, 0.493073881, 1.0015353,  -0.826728284, 1.60776818,   0.593754888, -0.67081809,
             -0.858240366, -0.806564033, -0.217615277, 1.68562138, 1.39453375, -0.0440478176, -0.0465879254,
             2.42958784,  1.40278864,  -0.303390592, 0.350288033, 0.0697084218, 0.651541471, 1.37914991, 0.225108519,
             0.869281054, 1.06826544,  1.2835077,  -0.130434096, 0.278203547, 2.47235346,  0.314031929});
  return x;
}

TEST(OptimalAttacks, ByzflsDocumentedExamples) {
  // TrMean(f = 1) after [NNM(f = 1), Clipping(c = 2)], one Byzantine worker.
  ChainOracle oracle(4, 1, {{"nnm", "{f: 1}"}, {"clip", "{c: 2.0}"}}, "tm", "{b: 1}");
  expect_close(craft_one("opt_alie", "{}", byzfl_example(), 1, oracle), {12.9198512, 13.9198512, 14.9198512});
  EXPECT_EQ(oracle.calls, 20) << "exactly evals calls of the defence";
  expect_close(craft_one("opt_ipm", "{}", byzfl_example(), 1, oracle), {-2.74877907, -3.43597384, -4.1231686});
}

TEST(OptimalAttacks, MatchByzflAgainstTheMedianAndNnmPlusTrimmedMean) {
  ChainOracle median(8, 2, {}, "cm", "{}");
  expect_close(craft_one("opt_alie", "{}", honest_rows(), 2, median),
               {12.6160724, 7.6698143, 7.34026993, 11.8897282, 7.13447871});
  expect_close(craft_one("opt_ipm", "{}", honest_rows(), 2, median),
               {-8.37187494, -9.49666609, -2.36118503, -6.3186161, 0.379790757});
  ChainOracle mixed(8, 2, {{"nnm", "{f: 2}"}}, "tm", "{b: 2}");
  const std::string search = "{evals: 30, delta: 3.0, ratio: 0.7}";
  expect_close(craft_one("opt_alie", search, honest_rows(), 2, mixed),
               {2.76052193, 2.04697688, 1.39613145, 2.47012071, 1.13318739});
  EXPECT_EQ(mixed.calls, 30);
  expect_close(craft_one("opt_ipm", search, honest_rows(), 2, mixed),
               {-0.958914709, -1.08774831, -0.270450176, -0.723734403, 0.0435012402});
}

TEST(TailoredAttacks, MatchThePapersSearchAgainstTrimmedMean) {
  ChainOracle tm(8, 2, {}, "tm", "{b: 2}");
  // The plain tailored attack: against a trimmed mean that always trims both Byzantine rows, nothing beats the
  // first gamma, which stays.
  expect_close(craft_one("agr_minmax", "{constraint: none}", honest_rows(), 2, tm),
               {-10.9416974, -5.77048108, -6.86803293, -10.626005, -7.21043686});
  expect_close(craft_one("agr_minmax", "{}", honest_rows(), 2, tm),
               {-0.3929849, 0.247822571, -0.505830418, -0.543896261, -0.787061829});
  expect_close(craft_one("agr_minsum", "{}", honest_rows(), 2, tm),
               {0.127135655, 0.544564322, -0.192132203, -0.0467823292, -0.470347408});
  expect_close(craft_one("agr_minmax", "{perturbation: unit}", honest_rows(), 2, tm),
               {-0.574246325, -0.651398359, -0.161959159, -0.433408537, 0.0260507291});
  expect_close(craft_one("agr_minsum", "{perturbation: sign}", honest_rows(), 2, tm),
               {0.289625848, 0.402104964, -0.311443143, 0.0842999642, 0.50958257});
  // gamma_init 10 and tol 1e-5 halve the step 20 times; the defence is queried only for allowed gammas.
  tm.calls = 0;
  craft_one("agr_minmax", "{constraint: none}", honest_rows(), 2, tm);
  EXPECT_EQ(tm.calls, 20);
}

/// The k-th call returns mean_h + k e_1, so every evaluation improves on the one before: the tailored search
/// then accepts exactly the gammas its constraint allows, which is the paper's own min-max / min-sum search
/// (our_attack_dist / our_attack_score; attacks_reference.py checks that with the paper's code).
class ImprovingStub : public DefenceOracle {
 public:
  explicit ImprovingStub(at::Tensor mean) : mean_(std::move(mean)) {}
  at::Tensor evaluate(const at::Tensor&) const override {
    at::Tensor out = mean_.clone();
    out[0] += static_cast<float>(++calls_);
    return out;
  }

 private:
  at::Tensor mean_;
  mutable int calls_ = 0;
};

TEST(TailoredAttacks, WithAnAlwaysImprovingDefenceTheyReduceToThePapersMinMaxAndMinSum) {
  ImprovingStub minmax(honest_rows().mean(0));
  expect_close(craft_one("agr_minmax", "{}", honest_rows(), 2, minmax),
               {-0.3929849, 0.247822571, -0.505830418, -0.543896261, -0.787061829});
  ImprovingStub minsum(honest_rows().mean(0));
  expect_close(craft_one("agr_minsum", "{}", honest_rows(), 2, minsum),
               {0.127135655, 0.544564322, -0.192132203, -0.0467823292, -0.470347408});
}

TEST(DefenceAttacks, WithNothingToSearchTheySendTheTrueMessagesAndNonFiniteHonestRowsStopThem) {
  for (const std::string name : {"opt_alie", "opt_ipm", "agr_minmax", "agr_minsum"}) {
    SCOPED_TRACE(name);
    AttackRound round;
    round.honest = honest_rows();
    round.byzantine_true = at::full({2, 5}, 0.5);
    auto attack = make_attack(name, "{}", 8, 2);
    EXPECT_TRUE(attack->omniscient());
    // No defence this round (an asynchronous buffer of Byzantine rows only): the true messages.
    EXPECT_TRUE(at::equal(attack->craft(round), round.byzantine_true));
    ChainOracle oracle(8, 2, {}, "cm", "{}");
    round.defence = &oracle;
    round.honest = honest_rows().clone();
    round.honest[2][1] = kNaN;
    EXPECT_ERROR_WITH(attack->craft(round), "an honest message holds NaN or Inf");
    // A distributed round that timed out before any honest message arrived: nothing to search against.
    round.honest = at::zeros({0, 5});
    round.byzantine_true = at::full({2, 5}, 0.25);
    EXPECT_TRUE(at::equal(attack->craft(round), round.byzantine_true));
  }
}

TEST(DefenceAttacks, RefuseSearchParametersOutsideByzflsRange) {
  EXPECT_ERROR_WITH(make_attack("opt_alie", "{ratio: 0.5}", 8, 2), "strictly between 0.5 and 1");
  EXPECT_ERROR_WITH(make_attack("opt_ipm", "{delta: 0.0}", 8, 2), "nonzero");
  EXPECT_ERROR_WITH(make_attack("agr_minsum", "{constraint: median}", 8, 2), "minmax");
}

// ---- the oracle leaves the real defence alone ------------------------------------------------------------

TEST(DefenceAttacks, QueriesLeaveCenteredClippingBucketingAndFoolsGoldAsTheyWere) {
  for (const std::string defence : {"{name: cc, pre: [{name: bucketing, s: 2}]}", "{name: foolsgold}"}) {
    core::PipelineSpec s = resolve_config(kSmallRun, {"aggregator=" + defence});
    RunInfo info = core::run_info(s, "");
    core::EnginePlugins probed = core::make_plugins(s, builtin_registry(), info, nullptr);
    core::EnginePlugins twin = core::make_plugins(s, builtin_registry(), info, nullptr);
    RoundContext round;
    round.round = 0;
    round.worker_ids = {0, 1, 2, 3, 4, 5};
    round.staleness.assign(6, 0);
    at::manual_seed(3);
    const at::Tensor first = at::randn({6, 5}), second = at::randn({6, 5});
    core::aggregate_rows(s, probed, first, round);
    core::aggregate_rows(s, twin, first, round);
    const State before = probed.aggregator->save_state();
    ASSERT_FALSE(before.empty()) << defence;
    for (const std::string attack : {"opt_alie", "opt_ipm", "agr_minmax", "agr_minsum"}) {
      SCOPED_TRACE(defence + " " + attack);
      core::EngineDefenceOracle oracle(s, probed, round, at::Tensor());
      craft_one(attack, "{}", second.slice(0, 0, 4), 2, oracle);
      for (const auto& [key, value] : probed.aggregator->save_state()) EXPECT_TRUE(at::equal(value, before.at(key))) << key;
    }
    EXPECT_TRUE(at::equal(core::aggregate_rows(s, probed, second, round), core::aggregate_rows(s, twin, second, round)));
  }
}

TEST(DefenceAttacks, RunInTheSyncAndAsyncSimulationsReproducibly) {
  for (const std::string engine : {"sync", "async"}) {
    for (const std::string attack : {"opt_alie", "opt_ipm", "agr_minmax", "agr_minsum"}) {
      SCOPED_TRACE(engine + " " + attack);
      std::vector<std::string> o{"attack={name: " + attack + "}", "aggregator={name: cc}"};
      if (engine == "async") o.push_back("engine={name: async, buffer: 6, speed: {name: homogeneous, time: 1.0}}");
      const std::string a = temp_dir("defence_attack_a_" + engine + attack), b = temp_dir("defence_attack_b_" + engine + attack);
      core::run_pipeline(resolve_config(kSmallRun, o), builtin_registry(), a, nullptr);
      core::run_pipeline(resolve_config(kSmallRun, o), builtin_registry(), b, nullptr);
      EXPECT_EQ(metrics_without_wall_time(a), metrics_without_wall_time(b));
    }
  }
}

}  // namespace
}  // namespace phalanx::test
