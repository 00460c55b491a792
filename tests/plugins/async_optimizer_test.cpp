// The asynchronous-SGD optimizers of docs/ormo.md (Shi, Yang, Li, NeurIPS 2024): OrMo's invariants under random
// arrival orders, OrMo against SSGDm, every rule against a hand-computed sequence, checkpoint round trips,
// and a shared check that each one minimises a quadratic when its gradients arrive late.
#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include <ATen/ATen.h>

#include "phalanx/context.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

std::shared_ptr<Optimizer> make(const std::string& name, std::int64_t workers, const std::string& params = "{}") {
  static std::vector<std::unique_ptr<core::RunContext>> contexts;
  contexts.push_back(make_context(workers, 0));
  return builtin_registry().make_optimizer(name, params_for(core::Kind::Optimizer, name, params), *contexts.back());
}

void expect_near(const at::Tensor& got, std::vector<float> want, double tolerance = 1e-6) {
  ASSERT_EQ(got.numel(), static_cast<std::int64_t>(want.size()));
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i].item<double>(), want[i], tolerance) << "index " << i;
}

Arrival arrival_from(std::int64_t worker, std::int64_t computed_at, std::int64_t current) {
  Arrival a;
  a.worker = worker;
  a.computed_at = computed_at;
  a.current = current;
  return a;
}

at::Tensor state_of(const Optimizer& opt, const char* key) { return opt.save_state().at(key); }

// One parameter server and K workers driven exactly as the asynchronous engine drives them: a worker pulls
// params_for_worker(w, k) and the index (iteration(), or the number of apply() calls when that is -1),
// computes at what it pulled, pushes (g, index), and pulls again right after its push is applied.
class Server {
 public:
  Server(std::shared_ptr<Optimizer> opt, at::Tensor w0, std::int64_t workers)
      : opt(std::move(opt)), w(std::move(w0)), pulled_(workers), pulled_at_(workers) {
    for (std::int64_t k = 0; k < workers; ++k) pull(k);
  }

  std::int64_t index() const { return opt->iteration() >= 0 ? opt->iteration() : applies_; }
  const at::Tensor& pulled(std::int64_t k) const { return pulled_[k]; }
  std::int64_t pulled_at(std::int64_t k) const { return pulled_at_[k]; }

  void push(std::int64_t k, const at::Tensor& gradient, double lr) {
    opt->apply(w, gradient, arrival_from(k, pulled_at_[k], index()), lr);
    ++applies_;
    pull(k);
  }

  // The same server and workers around another optimizer (a restored copy), with copies of the tensors.
  Server with(std::shared_ptr<Optimizer> other) const {
    Server copy = *this;
    copy.opt = std::move(other);
    copy.w = w.clone();
    for (auto& t : copy.pulled_) t = t.clone();
    return copy;
  }

  std::shared_ptr<Optimizer> opt;
  at::Tensor w;

 private:
  void pull(std::int64_t k) {
    pulled_[k] = opt->params_for_worker(w, k).clone();
    pulled_at_[k] = index();
  }

  std::vector<at::Tensor> pulled_;
  std::vector<std::int64_t> pulled_at_;
  std::int64_t applies_ = 0;
};

// Which worker finishes next: each worker's compute times are exponential with its own speed (drawn per seed
// over a 20x range), so slow workers push gradients that are many iterations old and arrivals interleave
// arbitrarily, as in the heterogeneous settings of the paper.
class RandomOrder {
 public:
  RandomOrder(std::int64_t workers, std::uint64_t seed) : rng_(seed), speed_(workers), finish_(workers) {
    std::uniform_real_distribution<double> log_speed(-1.5, 1.5);
    for (auto& s : speed_) s = std::exp(log_speed(rng_));
    for (std::size_t k = 0; k < speed_.size(); ++k) finish_[k] = draw(k);
  }
  std::int64_t next() {
    const auto k = static_cast<std::size_t>(std::min_element(finish_.begin(), finish_.end()) - finish_.begin());
    finish_[k] += draw(k);
    return static_cast<std::int64_t>(k);
  }

 private:
  double draw(std::size_t k) { return std::exponential_distribution<double>(speed_[k])(rng_); }
  std::mt19937_64 rng_;
  std::vector<double> speed_, finish_;
};

// ---------------------------------------------------------------------------------------------------------
// OrMo invariants 1, 2 and 4 after random arrival orders, against closed forms kept in float64.

struct OrderedVariant {
  std::string name = "ormo";
  bool vanilla_step = false;
  bool delay_adaptive = false;  // ormo_da's inverse rule with c = K
  bool random_iteration_every = false;
  bool beta_zero = false;
};

// One gradient that has arrived: what the closed forms need.
struct Arrived {
  at::Tensor gradient;       // float64 copy
  std::int64_t computed_at;  // j
  std::int64_t staleness;    // s = ite - j when it arrived
  double eta;                // the learning rate it was applied with (eta_s for ormo_da)
};

// Runs one seed and raises max_staleness to the largest staleness it produced. After every arrival it checks
//   ite == arrivals / iteration_every, cnt == arrivals % iteration_every,
//   invariant 1: u == sum beta^(ite-j) eta g,
//   invariant 2: w == w0 - sum eta (1 - beta^(ite-j+1)) / (1 - beta) g.
// With vanilla_step invariant 2 becomes w == w0 - sum eta (1 + (beta^(s+1) - beta^(ite-j+1)) / (1 - beta)) g:
// the arrival step is eta g instead of eta (1 - beta^(s+1)) / (1 - beta) g, and each closure from ite = j+s+1
// on adds the gradient's share beta^(ite-j) of u, as in the ordered case. ormo_da replaces eta by eta_s.
//
// Tolerance: the optimizer works in `dtype` (unit roundoff eps = 2^-24 for float32, 2^-53 for float64).
// Every arrival and every closure rounds each coordinate of w and u a few times (the coefficient's cast,
// the multiply-add, u *= beta, w -= u), each time by at most eps times the running magnitude, which the sum
// A of the absolute values of all terms bounds (the coefficients only grow with ite). The errors made in u
// reach w once per later closure, decaying by beta each time: at most 1 / (1 - beta) times. Hence
// |error| <= 8 (n + 1) eps A / (1 - beta) with n arrivals, 8 covering the roundings per step with margin.
// The largest error seen over all seeds is under a tenth of this bound, while a wrong exponent or coefficient
// moves a coordinate by about eta |g| (1e-2 .. 1e-1): taking beta^s for beta^(s+1) fails these tests.
void check_ordered_invariants(const OrderedVariant& v, std::uint64_t seed, at::ScalarType dtype,
                              std::int64_t& max_staleness) {
  std::mt19937_64 rng(seed);
  const std::int64_t workers = std::uniform_int_distribution<std::int64_t>(2, 6)(rng);
  RandomOrder order(workers, seed * 7919 + 1);
  const double beta = v.beta_zero ? 0.0 : (seed % 5 == 0 ? 0.9 : std::uniform_real_distribution<double>(0, 0.95)(rng));
  const std::int64_t every =
      v.random_iteration_every ? std::uniform_int_distribution<std::int64_t>(1, 2 * workers)(rng) : workers;
  const std::int64_t arrivals = std::uniform_int_distribution<std::int64_t>(workers, 12 * workers)(rng);
  std::string yaml = "{beta: " + std::to_string(beta) + ", vanilla_step: " + (v.vanilla_step ? "true" : "false");
  if (v.random_iteration_every) yaml += ", iteration_every: " + std::to_string(every);
  yaml += "}";
  auto opt = make(v.name, workers, yaml);
  const double beta_used = std::stod(std::to_string(beta));  // the value the YAML carried

  const std::int64_t d = 5;
  at::Generator gen = make_generator(seed);
  const at::Tensor w0 = at::randn({d}, gen, at::TensorOptions().dtype(dtype));
  const at::Tensor target = at::randn({d}, gen, at::TensorOptions().dtype(dtype));
  Server server(opt, w0.clone(), workers);

  const double eps = dtype == at::kFloat ? std::ldexp(1.0, -24) : std::ldexp(1.0, -53);
  std::vector<Arrived> arrived;
  for (std::int64_t n = 1; n <= arrivals; ++n) {
    const std::int64_t k = order.next();
    // A noisy quadratic gradient at what worker k pulled, and a learning rate that changes per arrival so a
    // gradient that kept the wrong eta would show.
    const at::Tensor g = (server.pulled(k) - target) + 0.5 * at::randn({d}, gen, at::TensorOptions().dtype(dtype));
    const double lr = 0.05 * (1.0 + 0.5 * std::sin(0.7 * static_cast<double>(n)));
    const std::int64_t s = opt->iteration() - server.pulled_at(k);
    const double eta =
        v.delay_adaptive ? lr * std::min(1.0, static_cast<double>(workers) / static_cast<double>(s + 1)) : lr;
    arrived.push_back({g.to(at::kDouble), server.pulled_at(k), s, eta});
    max_staleness = std::max(max_staleness, s);
    server.push(k, g, lr);

    const std::int64_t ite = opt->iteration();
    ASSERT_EQ(ite, n / every) << "seed " << seed;
    ASSERT_EQ(state_of(*opt, "arrivals_in_iteration").item<std::int64_t>(), n % every) << "seed " << seed;
    at::Tensor u_want = at::zeros({d}, at::kDouble), u_scale = at::zeros({d}, at::kDouble);
    at::Tensor w_want = w0.to(at::kDouble, /*non_blocking=*/false, /*copy=*/true), w_scale = w0.to(at::kDouble).abs();
    for (const Arrived& a : arrived) {
      const double age = static_cast<double>(ite - a.computed_at);
      const double u_coefficient = a.eta * std::pow(beta_used, age);
      const double w_coefficient =
          v.vanilla_step ? a.eta * (1.0 + (std::pow(beta_used, a.staleness + 1.0) - std::pow(beta_used, age + 1.0)) /
                                              (1.0 - beta_used))
                         : a.eta * (1.0 - std::pow(beta_used, age + 1.0)) / (1.0 - beta_used);
      u_want += u_coefficient * a.gradient;
      u_scale += u_coefficient * a.gradient.abs();
      w_want -= w_coefficient * a.gradient;
      w_scale += w_coefficient * a.gradient.abs();
    }
    const double slack = 8.0 * static_cast<double>(n + 1) * eps;
    const at::Tensor u_got = state_of(*opt, "ordered_momentum").to(at::kDouble);
    const at::Tensor w_got = server.w.to(at::kDouble);
    const at::Tensor u_excess = (u_got - u_want).abs() - slack * u_scale;
    const at::Tensor w_excess = (w_got - w_want).abs() - slack / (1.0 - beta_used) * w_scale;
    ASSERT_LE(u_excess.max().item<double>(), 0.0)
        << v.name << " invariant 1, seed " << seed << ", arrival " << n << "\n got " << u_got << "\n want " << u_want;
    ASSERT_LE(w_excess.max().item<double>(), 0.0)
        << v.name << " invariant 2, seed " << seed << ", arrival " << n << "\n got " << w_got << "\n want " << w_want;
  }
}

void check_ordered_invariants_over_seeds(const OrderedVariant& v) {
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    std::int64_t max_staleness = 0;
    for (std::uint64_t seed = 1; seed <= 50; ++seed) {
      check_ordered_invariants(v, seed, dtype, max_staleness);
      if (::testing::Test::HasFatalFailure()) return;
    }
    // The random orders must actually have delivered stale gradients, or the test proves little.
    EXPECT_GE(max_staleness, 4);
  }
}

TEST(OrMo, MomentumAndParametersMatchTheClosedFormsUnderRandomArrivalOrders) {
  check_ordered_invariants_over_seeds({});
}

TEST(OrMo, InvariantsHoldWhateverTheArrivalsPerIteration) {
  OrderedVariant v;
  v.random_iteration_every = true;
  check_ordered_invariants_over_seeds(v);
}

TEST(OrMo, VanillaStepKeepsTheMomentumOrdered) {
  OrderedVariant v;
  v.vanilla_step = true;
  check_ordered_invariants_over_seeds(v);
}

TEST(OrMoDa, InvariantsHoldWithTheDelayAdaptedLearningRate) {
  OrderedVariant v;
  v.name = "ormo_da";
  v.delay_adaptive = true;
  check_ordered_invariants_over_seeds(v);
}

TEST(OrMo, BetaZeroMatchesTheClosedFormOfAsgd) {
  OrderedVariant v;
  v.beta_zero = true;  // invariant 2 with beta = 0: w == w0 - sum eta g
  check_ordered_invariants_over_seeds(v);
}

// Runs two optimizers on the same random asynchronous arrivals (each worker computing at what it pulled from
// its own server) and expects bit-identical parameters after every arrival.
void expect_same_run(const std::string& a_name, const std::string& a_yaml, const std::string& b_name,
                     const std::string& b_yaml, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::int64_t workers = std::uniform_int_distribution<std::int64_t>(2, 6)(rng);
  RandomOrder order(workers, seed);
  at::Generator gen = make_generator(seed);
  const at::Tensor w0 = at::randn({4}, gen), target = at::randn({4}, gen);
  Server a(make(a_name, workers, a_yaml), w0.clone(), workers), b(make(b_name, workers, b_yaml), w0.clone(), workers);
  for (int n = 0; n < 60; ++n) {
    const std::int64_t k = order.next();
    const at::Tensor noise = at::randn({4}, gen);
    const double lr = 0.05 * (1.0 + 0.5 * std::sin(n));
    a.push(k, a.pulled(k) - target + noise, lr);
    b.push(k, b.pulled(k) - target + noise, lr);
    ASSERT_TRUE(at::equal(a.w, b.w)) << a_name << " vs " << b_name << ", seed " << seed << ", arrival " << n;
  }
}

// Invariant 4 bit for bit: with beta = 0 the ordered coefficient (1 - 0^(s+1)) / (1 - 0) is exactly 1, u is
// zeroed at every closure and w -= 0 changes nothing, so every arrival is ASGD's w -= eta g.
TEST(OrMo, BetaZeroIsAsgdBitForBit) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) expect_same_run("ormo", "{beta: 0}", "asgd", "{}", seed);
}

// ormo_da repeats ormo's server (one plugin, one file); with the constant rule the two must not differ.
TEST(OrMoDa, ConstantRuleIsOrMoBitForBit) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    expect_same_run("ormo_da", "{rule: constant, beta: 0.8}", "ormo", "{beta: 0.8}", seed);
    expect_same_run("ormo_da", "{rule: constant, vanilla_step: true}", "ormo", "{vanilla_step: true}", seed);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Invariant 3: fresh arrivals in order, K per iteration, all computed at the parameters the iteration opened
// with, against SSGDm (u <- beta u + eta sum_k g_k, w <- w - u).
//
// The eager server of the spec closes an iteration with u *= beta; w -= u, i.e. it applies the next
// momentum step before the workers pull. Induction on the iterations gives, with the same gradients,
//   u_OrMo = beta * u_SSGDm   and   w_OrMo = w_SSGDm - beta * u_SSGDm,
// so the workers compute at SSGDm's look-ahead point (SSGDm in its Nesterov form). Invariant 2 forces this:
// a gradient of iteration j weighs (1 - beta^(ite-j+1)) / (1 - beta) in w_OrMo, one power of beta more than
// the (1 - beta^(ite-j)) / (1 - beta) it has in w_SSGDm. Example, f = w^2 / 2, K = 1, eta = 0.1, beta = 0.9,
// w0 = 1: SSGDm with gradients at its own w gives w2 = 0.72; OrMo gives 0.5751 = 0.729 - 0.9 * 0.171, the
// look-ahead of SSGDm whose second gradient was taken at 0.81 = w1 - beta u1. So the test drives SSGDm with
// each round's gradients taken at w - beta u and compares the iterates OrMo's workers see.
TEST(OrMo, FreshInOrderArrivalsFollowSsgdmAtItsLookAhead) {
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    const std::int64_t workers = 2 + static_cast<std::int64_t>(seed % 5);
    const double beta = 0.9, lr = 0.05;
    auto ormo = make("ormo", workers, "{beta: 0.9}");
    auto ssgdm = make("ssgdm", workers, "{beta: 0.9, reduce: sum}");
    // float64, so that the comparison measures the algebra and not float32's rounding (the optimizers only
    // follow the dtype of the parameters they are given).
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    at::Generator gen = make_generator(seed);
    const at::Tensor curvature = at::rand({6}, gen, f64) + 0.5;  // f_k(w) = sum curvature (w - t_k)^2 / 2
    const at::Tensor targets = at::randn({workers, 6}, gen, f64);
    const at::Tensor w0 = at::randn({6}, gen, f64);
    auto gradients_at = [&](const at::Tensor& w) { return curvature * (w.unsqueeze(0) - targets); };  // [K, 6]

    at::Tensor w_ormo = w0.clone(), w_ssgdm = w0.clone(), u_ssgdm = at::zeros({6}, f64);
    for (std::int64_t i = 0; i < 30; ++i) {
      // OrMo: all K workers pull (w, ite) as the iteration opens, then push in order.
      const std::int64_t j = ormo->iteration();
      ASSERT_EQ(j, i);
      const at::Tensor g_ormo = gradients_at(ormo->params_for_worker(w_ormo, 0).clone());
      for (std::int64_t k = 0; k < workers; ++k) ormo->apply(w_ormo, g_ormo[k], arrival_from(k, j, j), lr);
      // SSGDm: one synchronous round; the engine hands it the mean, reduce: sum turns it into the sum.
      const at::Tensor g_ssgdm = gradients_at(w_ssgdm - beta * u_ssgdm);
      ssgdm->apply(w_ssgdm, g_ssgdm.mean(0), arrival_from(-1, i, i), lr);
      u_ssgdm = state_of(*ssgdm, "momentum");

      // Not bit for bit: OrMo adds eta g_k one by one, SSGDm multiplies eta K by their mean, so the two differ
      // by a few roundings per round (in float32 up to 2 ulps, ~5e-7 at |w| ~ 2). The iteration is stable
      // (eta * K * max curvature <= 0.05 * 6 * 1.5 = 0.45, inside Nesterov's bound 2 (1 + beta) / (1 + 2 beta)),
      // so those differences are damped, not amplified: in float64 with |w| <= ~3 they stay near 1e-15, and
      // 1e-12 (far below the 1e-6 asked for) leaves room for a different summation order in LibTorch.
      const at::Tensor lookahead = w_ssgdm - beta * u_ssgdm;
      ASSERT_LT((w_ormo - lookahead).abs().max().item<double>(), 1e-12) << "seed " << seed << ", iteration " << i;
      ASSERT_LT((state_of(*ormo, "ordered_momentum") - beta * u_ssgdm).abs().max().item<double>(), 1e-12)
          << "seed " << seed << ", iteration " << i;
    }
  }
}

// Under the synchronous engine (worker -1) the round's aggregate is one whole iteration.
TEST(OrMo, SynchronousAggregateIsOneWholeIteration) {
  auto ormo = make("ormo", 4, "{beta: 0.5}");
  at::Tensor w = at::zeros({1});
  ormo->apply(w, at::tensor({2.f}), arrival_from(-1, 0, 0), 1.0);  // u = 2, w = -2; close: u = 1, w = -3
  EXPECT_EQ(ormo->iteration(), 1);
  expect_near(w, {-3.f});
  // The engine's own step index (7) is ignored. u = 1 + 2 = 3, w = -5; close: u = 1.5, w = -6.5
  ormo->apply(w, at::tensor({2.f}), arrival_from(-1, 7, 7), 1.0);
  EXPECT_EQ(ormo->iteration(), 2);
  expect_near(w, {-6.5f});
}

// ---------------------------------------------------------------------------------------------------------
// Hand-computed sequences.

TEST(Asgd, StepsAgainstEveryArrivalWhateverItsStaleness) {
  auto opt = make("asgd", 4);
  EXPECT_EQ(opt->iteration(), -1);  // the engine counts the iterations
  at::Tensor w = at::tensor({1.f, 1.f});
  opt->apply(w, at::tensor({2.f, -4.f}), arrival_from(0, 0, 0), 0.5);  // w = (1, 1) - 0.5 (2, -4) = (0, 3)
  expect_near(w, {0.f, 3.f});
  opt->apply(w, at::tensor({2.f, -4.f}), arrival_from(1, 0, 9), 0.25);  // staleness 9 is ignored: (-0.5, 4)
  expect_near(w, {-0.5f, 4.f});
  EXPECT_TRUE(opt->save_state().empty());
  EXPECT_TRUE(at::equal(opt->params_for_worker(w, 2), w));
}

TEST(NaiveAsgdm, EveryArrivalEntersTheMomentumAsTheNewest) {
  auto opt = make("naive_asgdm", 4, "{beta: 0.5}");
  at::Tensor w = at::tensor({1.f, 0.f});
  // u = 0.5 * 0 + 0.5 * (2, 0) = (1, 0);            w = (1, 0) - (1, 0) = (0, 0)
  opt->apply(w, at::tensor({2.f, 0.f}), arrival_from(0, 0, 0), 0.5);
  expect_near(w, {0.f, 0.f});
  // u = 0.5 * (1, 0) + 0.5 * (4, 2) = (2.5, 1);       w = (-2.5, -1)
  opt->apply(w, at::tensor({4.f, 2.f}), arrival_from(1, 0, 1), 0.5);
  expect_near(w, {-2.5f, -1.f});
  // a stale zero gradient still decays u as if it were new: u = (1.25, 0.5); w = (-3.75, -1.5)
  opt->apply(w, at::tensor({0.f, 0.f}), arrival_from(2, 0, 2), 0.5);
  expect_near(w, {-3.75f, -1.5f});
  expect_near(state_of(*opt, "momentum"), {1.25f, 0.5f});
}

TEST(ShiftedMomentum, EachWorkerFeedsItsOwnBuffer) {
  auto opt = make("shifted_momentum", 2, "{beta: 0.5}");
  at::Tensor w = at::zeros({1});
  opt->apply(w, at::tensor({2.f}), arrival_from(0, 0, 0), 1.0);  // v0 = 2 (first: the gradient);  w = -2
  expect_near(w, {-2.f});
  opt->apply(w, at::tensor({4.f}), arrival_from(1, 0, 1), 1.0);  // v1 = 4;                         w = -6
  expect_near(w, {-6.f});
  opt->apply(w, at::tensor({2.f}), arrival_from(0, 1, 2), 1.0);  // v0 = 0.5 * 2 + 2 = 3;           w = -9
  expect_near(w, {-9.f});
  opt->apply(w, at::tensor({0.f}), arrival_from(1, 2, 3), 1.0);  // v1 = 0.5 * 4 + 0 = 2;           w = -11
  expect_near(w, {-11.f});
  const State state = opt->save_state();
  expect_near(state.at("momentum.worker0"), {3.f});
  expect_near(state.at("momentum.worker1"), {2.f});
}

TEST(ShiftedMomentum, DampeningFollowsTorchSgd) {
  auto opt = make("shifted_momentum", 2, "{beta: 0.5, dampening: 0.5}");
  at::Tensor w = at::zeros({1});
  opt->apply(w, at::tensor({2.f}), arrival_from(0, 0, 0), 1.0);  // torch: the first buffer is g, undamped: 2
  expect_near(w, {-2.f});
  opt->apply(w, at::tensor({2.f}), arrival_from(0, 1, 1), 1.0);  // v0 = 0.5 * 2 + 0.5 * 2 = 2;  w = -4
  expect_near(w, {-4.f});
  opt->apply(w, at::tensor({4.f}), arrival_from(0, 2, 2), 1.0);  // v0 = 0.5 * 2 + 0.5 * 4 = 3;  w = -7
  expect_near(w, {-7.f});
  // A synchronous aggregate (worker -1) has a buffer of its own: v = 2 (first), w = -9.
  opt->apply(w, at::tensor({2.f}), arrival_from(-1, 3, 3), 1.0);
  expect_near(w, {-9.f});
  expect_near(opt->save_state().at("momentum.aggregate"), {2.f});
}

// N = K = 2, beta = 0.5, eta = 1, w0 = (0, 0); the second coordinate is the first negated.
TEST(Smega2, StepsAndTheLookAheadSentToTheWorker) {
  auto opt = make("smega2", 2, "{beta: 0.5}");
  at::Tensor w = at::zeros({2});
  EXPECT_TRUE(at::equal(opt->params_for_worker(w, 0), w));  // nothing arrived: m = G = 0, w_hat = w
  // s = 1, G = 2, w -= 1 * (2 + 0.5 * 0) -> -2, no cycle end.
  opt->apply(w, at::tensor({2.f, -2.f}), arrival_from(0, 0, 0), 1.0);
  expect_near(w, {-2.f, 2.f});
  // w_hat = -2 - 0.5 (2 + 1 (0.5 - 1)) 0 - 0.5 (1/2) 2 = -2.5
  expect_near(opt->params_for_worker(w, 0), {-2.5f, 2.5f});
  // s = 0, G = 6, w -= 4 + 0 -> -6; cycle end: m = 0.5 * 0 + 6 / 2 = 3, G = 0.
  opt->apply(w, at::tensor({4.f, -4.f}), arrival_from(1, 0, 1), 1.0);
  expect_near(w, {-6.f, 6.f});
  // w_hat = -6 - 0.5 (2 + 0) 3 - 0 = -9
  expect_near(opt->params_for_worker(w, 1), {-9.f, 9.f});
  // s = 1, G = 2, w -= 2 + 0.5 * 3 -> -9.5
  opt->apply(w, at::tensor({2.f, -2.f}), arrival_from(0, 1, 2), 1.0);
  expect_near(w, {-9.5f, 9.5f});
  // w_hat = -9.5 - 0.5 (2 - 0.5) 3 - 0.5 (1/2) 2 = -9.5 - 2.25 - 0.5 = -12.25
  expect_near(opt->params_for_worker(w, 0), {-12.25f, 12.25f});
  // s = 0, G = 2, w -= 0 + 1.5 -> -11; cycle end: m = 1.5 + 2 / 2 = 2.5, G = 0
  opt->apply(w, at::tensor({0.f, 0.f}), arrival_from(1, 2, 3), 1.0);
  expect_near(w, {-11.f, 11.f});
  // w_hat = -11 - 0.5 * 2 * 2.5 = -13.5
  expect_near(opt->params_for_worker(w, 1), {-13.5f, 13.5f});
  expect_near(state_of(*opt, "momentum"), {2.5f, -2.5f});
}

TEST(Smega2, LookAheadUsesTheLastLearningRate) {
  auto opt = make("smega2", 2, "{beta: 0.5}");
  at::Tensor w = at::zeros({1});
  opt->apply(w, at::tensor({2.f}), arrival_from(0, 0, 0), 0.5);  // s = 1, G = 2, w = -1
  opt->apply(w, at::tensor({2.f}), arrival_from(1, 0, 1), 0.5);  // s = 0, G = 4, w = -2; m = 2, G = 0
  // w_hat = -2 - 0.5 * 0.5 * 2 * 2 = -3 (eta = 0.5, the last one)
  expect_near(opt->params_for_worker(w, 0), {-3.f});
}

TEST(Ssgdm, MeanUsesTheAggregateSumScalesItByK) {
  auto mean = make("ssgdm", 4, "{beta: 0.5}");
  at::Tensor w = at::tensor({1.f});
  mean->apply(w, at::tensor({2.f}), arrival_from(-1, 0, 0), 0.5);  // u = 0.5 * 2 = 1;          w = 0
  expect_near(w, {0.f});
  mean->apply(w, at::tensor({4.f}), arrival_from(-1, 1, 1), 0.5);  // u = 0.5 * 1 + 0.5 * 4 = 2.5;  w = -2.5
  expect_near(w, {-2.5f});

  auto sum = make("ssgdm", 4, "{beta: 0.5, reduce: sum}");
  w = at::tensor({1.f});
  sum->apply(w, at::tensor({1.f}), arrival_from(-1, 0, 0), 0.5);  // u = 0.5 * 4 * 1 = 2;        w = -1
  expect_near(w, {-1.f});
  sum->apply(w, at::tensor({0.5f}), arrival_from(-1, 1, 1), 0.5);  // u = 1 + 0.5 * 4 * 0.5 = 2;  w = -3
  expect_near(w, {-3.f});
}

// K = 2, beta = 0.5, eta = 1, w0 = 0 (second coordinate negated). Arrivals (worker, j, g):
TEST(OrMo, HandComputedOrderedAndVanillaSteps) {
  for (bool vanilla : {false, true}) {
    auto opt = make("ormo", 2, vanilla ? "{beta: 0.5, vanilla_step: true}" : "{beta: 0.5}");
    at::Tensor w = at::zeros({2});
    auto u = [&] { return state_of(*opt, "ordered_momentum"); };
    // (0, 0, 2): s = 0: u = 2, w -= 1 * 2 -> -2 (ordered coefficient (1 - 0.5) / 0.5 = 1, same as vanilla)
    opt->apply(w, at::tensor({2.f, -2.f}), arrival_from(0, 0, 0), 1.0);
    expect_near(w, {-2.f, 2.f});
    // (1, 0, 4): u = 6, w = -6; second arrival closes iteration 0: ite = 1, u = 3, w = -9
    opt->apply(w, at::tensor({4.f, -4.f}), arrival_from(1, 0, 0), 1.0);
    EXPECT_EQ(opt->iteration(), 1);
    expect_near(u(), {3.f, -3.f});
    expect_near(w, {-9.f, 9.f});
    // (0, 0, 4): s = 1: u += 0.5 * 4 -> 5; ordered w -= (1 - 0.25) / 0.5 * 4 = 6 -> -15; vanilla w -= 4 -> -13
    opt->apply(w, at::tensor({4.f, -4.f}), arrival_from(0, 0, 1), 1.0);
    expect_near(u(), {5.f, -5.f});
    expect_near(w, vanilla ? std::vector<float>{-13.f, 13.f} : std::vector<float>{-15.f, 15.f});
    // (1, 1, 2): s = 0: u = 7, w -= 2; closes iteration 1: ite = 2, u = 3.5, w -= 3.5
    //   ordered: -15 - 2 - 3.5 = -20.5;  vanilla: -13 - 2 - 3.5 = -18.5
    opt->apply(w, at::tensor({2.f, -2.f}), arrival_from(1, 1, 1), 1.0);
    EXPECT_EQ(opt->iteration(), 2);
    expect_near(u(), {3.5f, -3.5f});
    expect_near(w, vanilla ? std::vector<float>{-18.5f, 18.5f} : std::vector<float>{-20.5f, 20.5f});
  }
}

TEST(OrMo, AGradientFromAFutureIterationIsAnEngineError) {
  auto opt = make("ormo", 2);
  at::Tensor w = at::zeros({1});
  EXPECT_ERROR_WITH(opt->apply(w, at::tensor({1.f}), arrival_from(0, 3, 0), 0.1), "ormo", "iteration 3", "iteration()");
}

TEST(OrMo, BetaOfOneIsRefusedWithTheReason) {
  EXPECT_ERROR_WITH(make("ormo", 2, "{beta: 1}"), "beta", "below 1");
  EXPECT_ERROR_WITH(make("ormo_da", 2, "{beta: 1}"), "beta", "below 1");
}

// eta_s = eta * min(1, c / (s + 1)). K = 2, beta = 0 (so w moves by exactly eta_s g), eta = 1, w0 = 0.
// Arrivals (j, g) in order, with ite before each: (0,1)@0 (0,1)@0 | (0,1)@1 (1,1)@1 | (0,3)@2 (0,3)@2 | (0,4)@3.
//   c = 1:  s = 0, 0, 1, 0, 2, 2, 3 -> factors 1, 1, 1/2, 1, 1/3, 1/3, 1/4 -> w = -1, -2, -2.5, -3.5, -4.5, -5.5, -6.5
//   c = K = 2 (default): factors 1, 1, 1, 1, 2/3, 2/3, 1/2 -> w = -1, -2, -3, -4, -6, -8, -10
//   constant: factors 1 -> w = -1, -2, -3, -4, -7, -10, -14
TEST(OrMoDa, DelayAdaptedLearningRate) {
  const std::vector<std::pair<std::int64_t, float>> arrivals = {{0, 1}, {0, 1}, {0, 1}, {1, 1}, {0, 3}, {0, 3}, {0, 4}};
  const std::map<std::string, std::vector<float>> want = {
      {"{beta: 0, c: 1}", {-1, -2, -2.5, -3.5, -4.5, -5.5, -6.5}},
      {"{beta: 0}", {-1, -2, -3, -4, -6, -8, -10}},
      {"{beta: 0, rule: constant}", {-1, -2, -3, -4, -7, -10, -14}},
  };
  for (const auto& [yaml, expected] : want) {
    auto opt = make("ormo_da", 2, yaml);
    at::Tensor w = at::zeros({1});
    for (std::size_t i = 0; i < arrivals.size(); ++i) {
      const auto [j, g] = arrivals[i];
      opt->apply(w, at::tensor({g}), arrival_from(static_cast<std::int64_t>(i % 2), j, opt->iteration()), 1.0);
      expect_near(w, {expected[i]});  // eta_s g with eta_s = 1/3 is rounded once in float32: within 1e-6
    }
    EXPECT_EQ(opt->iteration(), 3) << yaml;
  }
}

// The rate also scales the ordered parts. iteration_every = 1, beta = 0.5, c = 1, eta = 1, w0 = 0:
//   (j=0, g=2) s=0, eta_s=1:   u = 2, w -= 1 * 2 -> -2;  close: u = 1, w = -3
//   (j=1, g=2) s=0:            u = 3, w = -5;            close: u = 1.5, w = -6.5
//   (j=0, g=3) s=2, eta_s=1/3: u += 0.25 * 3 / 3 -> 1.75;  w -= (1/3) (1 - 0.125) / 0.5 * 3 = 1.75 -> -8.25
//                              close: u = 0.875, w = -9.125
TEST(OrMoDa, DelayAdaptedRateScalesTheOrderedStepAndMomentum) {
  auto opt = make("ormo_da", 2, "{beta: 0.5, c: 1, iteration_every: 1}");
  at::Tensor w = at::zeros({1});
  opt->apply(w, at::tensor({2.f}), arrival_from(0, 0, 0), 1.0);
  expect_near(w, {-3.f});
  opt->apply(w, at::tensor({2.f}), arrival_from(1, 1, 1), 1.0);
  expect_near(w, {-6.5f});
  opt->apply(w, at::tensor({3.f}), arrival_from(0, 0, 2), 1.0);
  expect_near(w, {-9.125f});
  expect_near(state_of(*opt, "ordered_momentum"), {0.875f});
  EXPECT_EQ(opt->iteration(), 3);
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoints: a copy restored from save_state() continues exactly like the original, with the options that
// change a rule's state (the default parameters of every optimizer: optimizer_conformance_test.cpp).

struct StatefulCase {
  std::string name, yaml;
};

class AsyncOptimizerState : public ::testing::TestWithParam<StatefulCase> {};

TEST_P(AsyncOptimizerState, RestoredCopyContinuesIdentically) {
  const auto& [name, yaml] = GetParam();
  const std::int64_t workers = 3;
  for (int before : {0, 1, 7, 12}) {  // also before any arrival, when the buffers do not exist yet
    RandomOrder order(workers, 11);
    at::Generator gen = make_generator(5);
    const at::Tensor target = at::randn({4}, gen);
    Server original(make(name, workers, yaml), at::randn({4}, gen), workers);
    auto gradient = [&](const Server& s, std::int64_t k, const at::Tensor& noise) {
      return s.pulled(k) - target + noise;
    };
    for (int n = 0; n < before; ++n) {
      const std::int64_t k = order.next();
      original.push(k, gradient(original, k, at::randn({4}, gen)), 0.1);
    }
    auto copy = make(name, workers, yaml);
    copy->load_state(original.opt->save_state());
    Server restored = original.with(copy);
    for (int n = 0; n < 20; ++n) {
      const std::int64_t k = order.next();
      const at::Tensor noise = at::randn({4}, gen);
      const double lr = 0.1 / (1 + n);
      original.push(k, gradient(original, k, noise), lr);
      restored.push(k, gradient(restored, k, noise), lr);
      ASSERT_TRUE(at::equal(original.w, restored.w)) << name << ", restored after " << before << ", arrival " << n;
      ASSERT_TRUE(at::equal(original.pulled(k), restored.pulled(k))) << name << " look-ahead";
      ASSERT_EQ(original.opt->iteration(), restored.opt->iteration());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Stateful, AsyncOptimizerState,
                         ::testing::Values(StatefulCase{"shifted_momentum", "{dampening: 0.1}"},
                                           StatefulCase{"ssgdm", "{reduce: sum}"},
                                           StatefulCase{"ormo", "{vanilla_step: true}"},
                                           StatefulCase{"ormo_da", "{c: 1}"}),
                         [](const auto& info) { return info.param.name + "_options"; });

TEST(OrMo, StateHoldsTheCountersAsInt64AndRefusesAPartialOne) {
  auto opt = make("ormo", 2);
  at::Tensor w = at::zeros({2});
  opt->apply(w, at::ones({2}), arrival_from(0, 0, 0), 0.1);
  const State state = opt->save_state();
  EXPECT_EQ(state.at("iteration").dim(), 0);
  EXPECT_EQ(state.at("iteration").scalar_type(), at::kLong);
  EXPECT_EQ(state.at("arrivals_in_iteration").item<std::int64_t>(), 1);
  auto other = make("ormo", 2);
  EXPECT_ERROR_WITH(other->load_state({{"ordered_momentum", at::zeros({2})}}), "ormo", "iteration");
  EXPECT_ERROR_WITH(other->load_state({{"iteration", at::scalar_tensor(0, at::kLong)},
                                       {"arrivals_in_iteration", at::scalar_tensor(5, at::kLong)}}),
                    "ormo", "iteration_every = 2");
  other->load_state({});  // an empty state is a fresh start
  EXPECT_EQ(other->iteration(), 0);
}

TEST(ShiftedMomentum, RefusesAForeignStateEntry) {
  EXPECT_ERROR_WITH(make("shifted_momentum", 2)->load_state({{"center", at::zeros({2})}}), "shifted_momentum",
                    "center");
}

// ---------------------------------------------------------------------------------------------------------
// Each asynchronous rule drives a quadratic f(w) = 0.5 ||w - w*||^2 towards its minimum with K = 4 workers of
// speeds 1 : 1 : 2 : 4 whose gradients arrive late and out of order (decaying learning rate). The
// synchronous case, state round trips with default parameters, shapes and determinism are checked for every
// registered optimizer in optimizer_conformance_test.cpp.

class EveryAsyncOptimizer : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryAsyncOptimizer, MinimisesAQuadraticAsynchronously) {
  const std::int64_t workers = 4;
  const at::Tensor target = at::tensor({3.f, -1.f, 2.f});
  Server server(make(GetParam(), workers), at::zeros({3}), workers);
  const double start = target.norm().item<double>();
  const double period[] = {4, 4, 2, 1};  // worker k pushes every period[k] time units
  std::vector<double> next(period, period + workers);
  const int total = 2000;
  for (int t = 0; t < total; ++t) {
    const auto k = std::min_element(next.begin(), next.end()) - next.begin();
    next[k] += period[k];
    server.push(k, server.pulled(k) - target, 0.02 * (1.0 - static_cast<double>(t) / total));
  }
  EXPECT_LT((server.w - target).norm().item<double>(), 0.05 * start) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Builtins, EveryAsyncOptimizer,
                         ::testing::Values("asgd", "naive_asgdm", "shifted_momentum", "smega2", "ssgdm", "ormo",
                                           "ormo_da"));

}  // namespace
}  // namespace phalanx::test
