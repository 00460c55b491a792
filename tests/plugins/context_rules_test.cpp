// The aggregators that need the round context: fltrust (the server's gradient) and foolsgold (worker ids and
// per-worker histories), against tests/reference/context_rules_reference.py, an independent implementation
// from the papers (FoolsGold's weights: the original code's foolsgold(grads), verbatim); then their errors where
// the context lacks what they need, FoolsGold's saved state, and runs in the sync and async simulations.
#include <ATen/ATen.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/engine/sync_engine.hpp"
#include "small_run.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

RoundContext context_for(std::vector<std::int64_t> ids, at::Tensor server_gradient = at::Tensor()) {
  RoundContext round;
  round.round = 0;
  round.staleness.assign(ids.size(), 0);
  round.worker_ids = std::move(ids);
  round.server_gradient = std::move(server_gradient);
  return round;
}

// ---- fltrust ----------------------------------------------------------------------------------------------

// 6 x 5; row 4 = -3 x, score 0; row 5 = 20 x, rescaled to ||g0|| (context_rules_reference.py, "fltrust").
at::Tensor fltrust_rows() {
  return matrix(6, 5, {-0.275110841, -0.322099328, 0.380254805, 1.55247235, -0.0238966215, -0.801643729,
                       -0.4987351,   2.07745123,   -0.0504098609, -0.88362509, -0.00228928798, 0.598273158,
                       0.587102056,  2.16303062,   0.108602703,  -1.24564576, 1.80886006,  0.58700949,
                       0.600001931,  -0.379030496, 2.20690155,   -5.64230883, 3.65314865,  0.960377008,
                       2.54060125,   34.8738933,   12.4456143,   -8.16549361, 20.2638006,  44.890089});
}
at::Tensor fltrust_g0() { return at::tensor({-0.525950253f, 0.542505682f, 0.236148924f, 0.205636293f, 0.623452127f}); }

TEST(FlTrust, MatchesThePapersFormula) {
  auto rule = make_aggregator("fltrust", "{}", 6, 1);
  expect_close(rule->aggregate_with_context(fltrust_rows(), context_for({0, 1, 2, 3, 4, 5}, fltrust_g0())),
               {-0.150521297, 0.399286685, 0.195353974, 0.536181575, 0.0677349538});
}

TEST(FlTrust, ANonFiniteRowScoresZeroAndNoPositiveScoreGivesNoUpdate) {
  auto rule = make_aggregator("fltrust", "{}", 7, 1);
  at::Tensor x = at::cat({fltrust_rows(), at::full({1, 5}, kNaN)});
  expect_close(rule->aggregate_with_context(x, context_for({0, 1, 2, 3, 4, 5, 6}, fltrust_g0())),
               {-0.150521297, 0.399286685, 0.195353974, 0.536181575, 0.0677349538});
  // Every row points away from g0: the model does not move.
  at::Tensor away = fltrust_g0().neg().unsqueeze(0).repeat({3, 1});
  at::Tensor out = rule->aggregate_with_context(away, context_for({0, 1, 2}, fltrust_g0()));
  EXPECT_TRUE(at::equal(out, at::zeros({5})));
}

TEST(FlTrust, WithoutAServerGradientItSaysToSetServerData) {
  auto rule = make_aggregator("fltrust", "{}", 6, 1);
  EXPECT_ERROR_WITH(rule->aggregate(fltrust_rows()), "server_data: {samples: 100}");
  EXPECT_ERROR_WITH(rule->aggregate_with_context(fltrust_rows(), context_for({0, 1, 2, 3, 4, 5})), "server_data");
  at::Tensor bad = fltrust_g0();
  bad[0] = kInf;
  EXPECT_ERROR_WITH(rule->aggregate_with_context(fltrust_rows(), context_for({0, 1, 2, 3, 4, 5}, bad)), "NaN or Inf");
}

// ---- foolsgold --------------------------------------------------------------------------------------------

// Two rounds of 5 workers; 3 and 4 are sybils (context_rules_reference.py, "foolsgold").
at::Tensor foolsgold_round(int r) {
  if (r == 0)
    return matrix(5, 6, {0.0166181158, -0.228287086, 0.831039965, -0.264676094, -0.589702666, 0.627478123,
                         0.720625579,  -0.174555093, 0.0173348356, 1.68986368, -0.208719179, 0.047105439,
                         0.88937813,   0.672703028,  1.10590196,  0.708877921, 0.0961604938, 0.359220028,
                         0.719490637,  2.53366776,   -1.49352216, -0.181918944, 1.39560884,  1.03591081,
                         0.812838343,  2.35565117,   -1.52731787, -0.386640237, 1.38958905,  0.945327693});
  return matrix(5, 6, {-0.211128578, -0.437407732, 0.0653289855, 0.0868323594, -0.158843666, 0.154297128,
                       0.176759496,  -0.729636371, -0.296513408, 0.19513984,   -0.22733973,  0.113921203,
                       0.974344432,  -0.222722441, 0.268030703,  0.537508249,  0.0981612429, 0.236339182,
                       0.874633801,  2.29307881,   -1.10682199,  0.0486611411, 1.430784,     1.2261443,
                       0.571174762,  2.49921963,   -1.64007812,  0.143635203,  1.39987471,   1.23081412});
}

TEST(FoolsGold, MatchesTheOriginalCodeOverTwoRoundsOfHistory) {
  auto mean = make_aggregator("foolsgold", "{}", 5, 2);
  auto weighted = make_aggregator("foolsgold", "{normalize: weighted}", 5, 2);
  const auto ids = context_for({0, 1, 2, 3, 4});
  expect_close(mean->aggregate_with_context(foolsgold_round(0), ids),
               {0.303894865, 0.0473417122, 0.375904825, 0.394885328, -0.13895409, 0.201352437});
  expect_close(weighted->aggregate_with_context(foolsgold_round(0), ids),
               {0.530006446, 0.0825660961, 0.655595087, 0.688697946, -0.242342243, 0.351167795});
  expect_close(mean->aggregate_with_context(foolsgold_round(1), ids),
               {0.0899712362, -0.196853888, 0.00979473986, 0.101506437, -0.0466040594, 0.071084599});
  expect_close(weighted->aggregate_with_context(foolsgold_round(1), ids),
               {0.209387723, -0.458132944, 0.0227950439, 0.236233296, -0.108460418, 0.165433342});
}

TEST(FoolsGold, KappaScalesTheLogitAndHistoriesFollowWorkerIdsNotRowPositions) {
  // kappa 0.5: weights {1, 0.287109071, 0.287109071, 0, 0} after both rounds.
  auto rule = make_aggregator("foolsgold", "{kappa: 0.5, normalize: none}", 5, 2);
  rule->aggregate_with_context(foolsgold_round(0), context_for({0, 1, 2, 3, 4}));
  // The second round arrives in another order with its ids: the same workers' histories grow.
  at::Tensor order = at::tensor({4, 2, 0, 3, 1}, at::kLong);
  at::Tensor out = rule->aggregate_with_context(foolsgold_round(1).index_select(0, order), context_for({4, 2, 0, 3, 1}));
  at::Tensor x = foolsgold_round(1);
  at::Tensor want = x[0] + (x[1] + x[2]) * 0.287109071;
  EXPECT_TRUE(at::allclose(out, want, 1e-5, 1e-6)) << out << want;
}

TEST(FoolsGold, CoordsRestrictTheComparedCoordinates) {
  // Histories compared on coordinates 1-3 only: weights {1, 1, 1, 0, 0} after both rounds.
  auto rule = make_aggregator("foolsgold", "{coords: [1, 4]}", 5, 2);
  rule->aggregate_with_context(foolsgold_round(0), context_for({0, 1, 2, 3, 4}));
  expect_close(rule->aggregate_with_context(foolsgold_round(1), context_for({0, 1, 2, 3, 4})),
               {0.18799507, -0.277953309, 0.00736925602, 0.16389609, -0.0576044306, 0.100911503});
  EXPECT_ERROR_WITH(make_aggregator("foolsgold", "{coords: [4, 1]}", 5, 2), "begin < end");
  auto beyond = make_aggregator("foolsgold", "{coords: [0, 7]}", 5, 2);
  EXPECT_ERROR_WITH(beyond->aggregate_with_context(foolsgold_round(0), context_for({0, 1, 2, 3, 4})), "only 6 coordinates");
}

TEST(FoolsGold, TwoRowsOfOneWorkerInABufferAreNotEachOthersSybil) {
  // An asynchronous buffer may hold two messages of worker 0: they share its history, and their cosine 1 must
  // not zero them. The three rows then all have the same largest cosine, so all get weight 1.
  auto rule = make_aggregator("foolsgold", "{normalize: none}", 5, 2);
  at::Tensor x = foolsgold_round(0).slice(0, 0, 3);
  at::Tensor out = rule->aggregate_with_context(x, context_for({0, 0, 1}));
  EXPECT_TRUE(at::allclose(out, x.sum(0), 1e-5, 1e-6)) << out;
}

TEST(FoolsGold, HistoriesAreSavedAndRestored) {
  auto first = make_aggregator("foolsgold", "{}", 5, 2);
  first->aggregate_with_context(foolsgold_round(0), context_for({0, 1, 2, 3, 4}));
  const State saved = first->save_state();
  at::Tensor next = first->aggregate_with_context(foolsgold_round(1), context_for({0, 1, 2, 3, 4}));
  auto resumed = make_aggregator("foolsgold", "{}", 5, 2);
  resumed->load_state(saved);
  EXPECT_TRUE(at::equal(resumed->aggregate_with_context(foolsgold_round(1), context_for({0, 1, 2, 3, 4})), next));
  auto other = make_aggregator("foolsgold", "{}", 7, 2);
  EXPECT_ERROR_WITH(other->load_state(saved), "another number of workers");
}

TEST(FoolsGold, ANonFiniteRowIsNotAddedToItsHistoryAndGetsNoWeight) {
  auto rule = make_aggregator("foolsgold", "{}", 5, 2);
  at::Tensor x = foolsgold_round(0).clone();
  x[1][2] = kNaN;
  at::Tensor out = rule->aggregate_with_context(x, context_for({0, 1, 2, 3, 4}));
  EXPECT_TRUE(at::isfinite(out).all().item<bool>()) << out;
  EXPECT_EQ(rule->save_state().at("history")[1].abs().sum().item<float>(), 0.0f);
}

TEST(FoolsGold, AHistoryThatOverflowsFloat32GetsNoWeight) {
  auto rule = make_aggregator("foolsgold", "{}", 5, 2);
  at::Tensor x = foolsgold_round(0).clone();
  x[0].fill_(3e38f);  // finite, but two of them overflow worker 0's float32 history
  rule->aggregate_with_context(x, context_for({0, 1, 2, 3, 4}));
  at::Tensor out = rule->aggregate_with_context(x, context_for({0, 1, 2, 3, 4}));
  ASSERT_FALSE(at::isfinite(rule->save_state().at("history")[0]).all().item<bool>());
  EXPECT_TRUE(at::isfinite(out).all().item<bool>()) << out;
  EXPECT_LT(out.abs().max().item<float>(), 10.0f) << out;
}

TEST(FoolsGold, WithoutWorkerIdsItNamesThePreAggregatorThatRemovedThem) {
  auto rule = make_aggregator("foolsgold", "{}", 5, 2);
  EXPECT_ERROR_WITH(rule->aggregate(foolsgold_round(0)), "needs each row's worker id");
  EXPECT_ERROR_WITH(rule->aggregate_with_context(foolsgold_round(0), RoundContext()), "such as bucketing");
}

// ---- in the engines ---------------------------------------------------------------------------------------

// The support library's small run with a signflip attack.
core::PipelineSpec spec(std::vector<std::string> overrides) {
  overrides.insert(overrides.begin(), "attack={name: signflip}");
  return resolve_config(kSmallRun, overrides);
}

TEST(ContextRules, RunInTheSyncAndAsyncSimulationsReproducibly) {
  for (const std::string engine : {"sync", "async"}) {
    for (const std::string rule : {"fltrust", "foolsgold"}) {
      SCOPED_TRACE(engine + " " + rule);
      std::vector<std::string> o{"aggregator={name: " + rule + "}", "server_data={samples: 50}"};
      if (engine == "async") o.push_back("engine={name: async, buffer: 4, speed: {name: homogeneous, time: 1.0}}");
      const std::string a = temp_dir("context_rule_a_" + engine + rule), b = temp_dir("context_rule_b_" + engine + rule);
      core::run_pipeline(spec(o), builtin_registry(), a, nullptr);
      core::run_pipeline(spec(o), builtin_registry(), b, nullptr);
      EXPECT_EQ(metrics_without_wall_time(a), metrics_without_wall_time(b));
    }
  }
}

TEST(ContextRules, FlTrustWithoutServerDataAndFoolsGoldAfterBucketingStopWithClearErrors) {
  EXPECT_ERROR_WITH(core::run_pipeline(spec({"aggregator={name: fltrust}"}), builtin_registry(),
                                       temp_dir("context_rule_no_server_data"), nullptr),
                    "server_data");
  EXPECT_ERROR_WITH(core::run_pipeline(spec({"aggregator={name: foolsgold, pre: [{name: bucketing, s: 2}]}"}),
                                       builtin_registry(), temp_dir("context_rule_bucketing"), nullptr),
                    "such as bucketing");
}

}  // namespace
}  // namespace phalanx::test
