// Properties every optimizer registered in this build must have, the optimizer counterpart of
// aggregator_conformance_test.cpp: the suite is instantiated over the registry's list, so a new optimizer
// plugin (or a new name registered by a family's file) is tested without touching this file.
//
// Each optimizer runs with its default parameters for K = 3 workers, driven as the asynchronous engine drives
// it: worker k pulls params_for_worker(w, k) and the index (iteration(), or the number of apply() calls when
// that is -1), turns its gradient into a message with its own WorkerRule, and pushes; arrivals interleave in
// a fixed irregular order so gradients arrive stale. Synchronous rounds are arrivals from worker -1.
// Rule-specific values (OrMo's invariants, hand-computed steps) are in optimizer_test.cpp and
// async_optimizer_test.cpp.
#include <iterator>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/context.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

constexpr std::int64_t kWorkers = 3;
constexpr std::int64_t kDim = 4;
// Worker k's position in the order of arrivals: worker 2 is fast, worker 0 slow, so 0's gradients are stale.
constexpr std::int64_t kOrder[] = {2, 1, 2, 2, 0, 1, 2, 2, 1, 2, 0, 2, 1, 2, 2, 0, 1, 2};

std::vector<std::string> optimizer_names() {
  std::vector<std::string> names;
  for (const core::PluginEntry* entry : builtin_registry().list(core::Kind::Optimizer))
    names.push_back(entry->info.name);
  return names;
}

std::shared_ptr<Optimizer> optimizer_under_test(const std::string& name, std::int64_t workers = kWorkers) {
  return make_optimizer(name, "{}", workers);
}

Arrival arrival_from(std::int64_t worker, std::int64_t computed_at, std::int64_t current) {
  Arrival a;
  a.worker = worker;
  a.computed_at = computed_at;
  a.current = current;
  return a;
}

// One server and its workers. A worker's gradient is that of f(w) = 0.5 ||w - target||^2 plus `noise`.
class Server {
 public:
  Server(std::shared_ptr<Optimizer> optimizer, at::Tensor w0, std::int64_t workers)
      : opt(std::move(optimizer)), w(std::move(w0)), pulled_(workers), pulled_at_(workers) {
    for (std::int64_t k = 0; k < workers; ++k) {
      rules_.push_back(opt->make_worker_rule(k));
      pull(k);
    }
  }

  std::int64_t index() const { return opt->iteration() >= 0 ? opt->iteration() : applies_; }

  void push(std::int64_t k, const at::Tensor& target, const at::Tensor& noise, double lr) {
    const at::Tensor gradient = pulled_[k] - target + noise;
    const at::Tensor message = rules_[k]->message(gradient, pulled_at_[k]);
    const at::Tensor sent = message.clone();
    opt->apply(w, message, arrival_from(k, pulled_at_[k], index()), lr);
    EXPECT_TRUE(at::equal(message, sent)) << "apply() changed the update it was given";
    ++applies_;
    pull(k);
  }

  /// The same workers and pulled values around `other`, with their rules' and the parameters' state copied
  /// through save_state/load_state as a checkpoint would.
  Server restored_into(std::shared_ptr<Optimizer> other) const {
    other->load_state(opt->save_state());
    Server copy(other, w.clone(), static_cast<std::int64_t>(rules_.size()));
    for (std::size_t k = 0; k < rules_.size(); ++k) {
      copy.rules_[k]->load_state(rules_[k]->save_state());
      copy.pulled_[k] = pulled_[k].clone();
      copy.pulled_at_[k] = pulled_at_[k];
    }
    copy.applies_ = applies_;
    return copy;
  }

  const at::Tensor& pulled(std::int64_t k) const { return pulled_[k]; }

  std::shared_ptr<Optimizer> opt;
  at::Tensor w;

 private:
  void pull(std::int64_t k) {
    pulled_[k] = opt->params_for_worker(w, k).clone();
    pulled_at_[k] = index();
  }

  std::vector<std::unique_ptr<WorkerRule>> rules_;
  std::vector<at::Tensor> pulled_;
  std::vector<std::int64_t> pulled_at_;
  std::int64_t applies_ = 0;
};

class OptimizerConformance : public ::testing::TestWithParam<std::string> {
 protected:
  /// `count` arrivals in kOrder (repeated), with noise and a decaying rate drawn from `generator`.
  static void drive(Server& server, int count, at::Generator& generator, const at::Tensor& target, int first = 0) {
    for (int n = first; n < first + count; ++n) {
      const at::Tensor noise = at::randn({kDim}, generator).mul_(0.1);
      server.push(kOrder[n % std::size(kOrder)], target, noise, 0.1 / (1 + n));
    }
  }
};

TEST_P(OptimizerConformance, MinimisesAQuadraticSynchronously) {
  // One aggregate per round (worker -1) through the worker half, with a decaying rate so that normalised
  // steps settle too.
  auto opt = optimizer_under_test(GetParam(), 4);
  auto rule = opt->make_worker_rule(0);
  const at::Tensor target = at::tensor({3.f, -1.f, 2.f});
  at::Tensor w = at::zeros({3});
  const double start = (w - target).norm().item<double>();
  for (int t = 0; t < 400; ++t) {
    at::Tensor g = opt->params_for_worker(w, -1) - target;
    opt->apply(w, rule->message(g, t), arrival_from(-1, t, t), 0.1 * (1.0 - t / 400.0));
  }
  EXPECT_LT((w - target).norm().item<double>(), 0.05 * start);
}

TEST_P(OptimizerConformance, KeepsShapesAndStaysFiniteOnFiniteInput) {
  at::Generator generator = make_generator(3);
  const at::Tensor target = at::randn({kDim}, generator);
  Server server(optimizer_under_test(GetParam()), at::randn({kDim}, generator), kWorkers);
  drive(server, 12, generator, target);
  EXPECT_EQ(server.w.sizes(), at::IntArrayRef({kDim}));
  EXPECT_TRUE(at::isfinite(server.w).all().item<bool>()) << server.w;
  for (std::int64_t k = 0; k < kWorkers; ++k) {
    EXPECT_EQ(server.pulled(k).sizes(), at::IntArrayRef({kDim}));
    EXPECT_TRUE(at::isfinite(server.pulled(k)).all().item<bool>()) << "worker " << k << ": " << server.pulled(k);
  }
}

TEST_P(OptimizerConformance, SameInputsGiveBitIdenticalParameters) {
  at::Generator first_generator = make_generator(4), second_generator = make_generator(4);
  const at::Tensor target = at::randn({kDim}, make_generator(5)), w0 = at::randn({kDim}, make_generator(6));
  Server first(optimizer_under_test(GetParam()), w0.clone(), kWorkers),
      second(optimizer_under_test(GetParam()), w0.clone(), kWorkers);
  drive(first, 15, first_generator, target);
  drive(second, 15, second_generator, target);
  EXPECT_TRUE(at::equal(first.w, second.w)) << first.w << "\n" << second.w;
}

TEST_P(OptimizerConformance, RestoredCopyContinuesIdentically) {
  for (int before : {0, 1, 7}) {  // also before any arrival, when buffers do not exist yet
    SCOPED_TRACE("restored after " + std::to_string(before) + " arrivals");
    at::Generator generator = make_generator(7);
    const at::Tensor target = at::randn({kDim}, generator);
    Server original(optimizer_under_test(GetParam()), at::randn({kDim}, generator), kWorkers);
    drive(original, before, generator, target);
    Server restored = original.restored_into(optimizer_under_test(GetParam()));
    for (int n = before; n < before + 12; ++n) {
      const std::int64_t k = kOrder[n % std::size(kOrder)];
      const at::Tensor noise = at::randn({kDim}, generator);
      original.push(k, target, noise, 0.05);
      restored.push(k, target, noise, 0.05);
      ASSERT_TRUE(at::equal(original.w, restored.w)) << "arrival " << n;
      ASSERT_TRUE(at::equal(original.pulled(k), restored.pulled(k))) << "what worker " << k << " pulls";
      ASSERT_EQ(original.opt->iteration(), restored.opt->iteration());
    }
  }
}

TEST_P(OptimizerConformance, EmptyStateIsAFreshStart) {
  at::Generator first_generator = make_generator(8), second_generator = make_generator(8);
  const at::Tensor target = at::randn({kDim}, make_generator(9)), w0 = at::randn({kDim}, make_generator(10));
  auto loaded = optimizer_under_test(GetParam());
  loaded->load_state({});
  Server fresh(optimizer_under_test(GetParam()), w0.clone(), kWorkers), from_empty(loaded, w0.clone(), kWorkers);
  drive(fresh, 10, first_generator, target);
  drive(from_empty, 10, second_generator, target);
  EXPECT_TRUE(at::equal(fresh.w, from_empty.w));
}

TEST_P(OptimizerConformance, RefusesAStateWrittenForAnotherModelSize) {
  // A checkpoint of a model with kDim parameters loaded into a run whose model has kDim - 1: a rule whose
  // state holds a tensor of the model's size must refuse it with a clear error, never broadcast or crash.
  at::Generator generator = make_generator(11);
  const at::Tensor target = at::randn({kDim}, generator);
  Server original(optimizer_under_test(GetParam()), at::randn({kDim}, generator), kWorkers);
  drive(original, 9, generator, target);  // every worker has pushed at least twice
  const State state = original.opt->save_state();
  bool holds_model_sized = false;
  for (const auto& [key, tensor] : state) holds_model_sized |= tensor.defined() && tensor.numel() == kDim;
  auto restored = optimizer_under_test(GetParam());
  restored->load_state(state);
  at::Tensor smaller = at::zeros({kDim - 1});
  const std::int64_t index = restored->iteration() >= 0 ? restored->iteration() : 0;
  if (holds_model_sized) {
    EXPECT_ERROR_WITH(restored->apply(smaller, at::ones({kDim - 1}), arrival_from(2, index, index), 0.1),
                      GetParam().c_str(), "another model");
  } else {
    restored->apply(smaller, at::ones({kDim - 1}), arrival_from(2, index, index), 0.1);
    EXPECT_TRUE(at::isfinite(smaller).all().item<bool>());
  }
}

INSTANTIATE_TEST_SUITE_P(Builtins, OptimizerConformance, ::testing::ValuesIn(optimizer_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace phalanx::test
