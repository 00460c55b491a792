// ormo_da: OrMo with a delay-adaptive learning rate (Shi, Yang, Li, "Ordered Momentum for Asynchronous
// SGD", NeurIPS 2024, arXiv 2407.19234: OrMo-DA, whose rate does not depend on the maximum delay), as
// reconstructed in shared/papers/ormo.md (issue 4).
//
// The server is ormo's (see ormo.cpp for the derivation and the relation to SSGDm) with each gradient's eta
// replaced by eta_s, chosen from its staleness s = ite - j when it arrives:
//
//   eta_s = eta * factor(s)
//   u    += beta^s * eta_s * g
//   w    -= eta_s * (1 - beta^(s+1)) / (1 - beta) * g        (vanilla_step: w -= eta_s * g)
//   cnt  += 1;  if cnt == iteration_every: cnt = 0; ite += 1; u *= beta; w -= u
//
// so ormo's invariants hold with eta_s in place of eta. The paper's exact rule was not recoverable; the
// default is **(ours)**, and the rule is a parameter so the alternatives sit in one table (kRules below):
//
//   inverse:   factor(s) = min(1, c / (s + 1))     full step up to staleness c - 1, then ~ 1 / staleness
//   constant:  factor(s) = 1                       no adaptation: the same arithmetic as ormo
//
// The ordered server is repeated here rather than shared with ormo.cpp: a plugin is one file, and the core
// and SDK hold no plugin code. The test suite runs ormo_da with `rule: constant` against ormo, arrival for
// arrival, so the two copies cannot drift apart. Under the synchronous engine (Arrival::worker == -1) a
// round's aggregate is one whole iteration with s = 0.
//
// | parameter       | default         | meaning                                                        |
// |-----------------|-----------------|----------------------------------------------------------------|
// | beta            | 0.9             | momentum, in [0, 1)                                            |
// | rule            | inverse         | delay-adaptive rule: inverse or constant                       |
// | c               | auto: workers K | staleness scale of the inverse rule (> 0)                      |
// | iteration_every | auto: workers K | arrivals per iteration **(ours)**                              |
// | vanilla_step    | false           | ablation: w -= eta_s * g on arrival instead of the ordered step |
//
// State: "ordered_momentum" (u, absent before the first arrival), "iteration" (ite) and
// "arrivals_in_iteration" (cnt), 0-dim int64.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

// The delay-adaptive rules: add one line here to add a rule; the parameter's choices and help come from
// this table.
struct DelayRule {
  const char* name;
  const char* formula;  // eta_s / eta, for `phalanx plugins`
  double (*factor)(double c, std::int64_t staleness);
};
constexpr DelayRule kRules[] = {
    {"inverse", "min(1, c / (s + 1))",
     [](double c, std::int64_t s) { return std::min(1.0, c / static_cast<double>(s + 1)); }},
    {"constant", "1, no adaptation", [](double, std::int64_t) { return 1.0; }},
};

class DelayAdaptiveOrderedMomentum : public Optimizer {
 public:
  DelayAdaptiveOrderedMomentum(double beta, const DelayRule& rule, double c, std::int64_t iteration_every,
                               bool vanilla_step)
      : beta_(beta), rule_(rule), c_(c), iteration_every_(iteration_every), vanilla_step_(vanilla_step) {}

  std::unique_ptr<WorkerRule> make_worker_rule(std::int64_t) const override {
    return std::make_unique<IdentityWorkerRule>();
  }

  std::int64_t iteration() const override { return iteration_; }

  void apply(at::Tensor& params, const at::Tensor& gradient, const Arrival& arrival, double lr) override {
    const bool whole_iteration = arrival.worker < 0;
    const std::int64_t s = whole_iteration ? 0 : iteration_ - arrival.computed_at;
    if (s < 0)
      throw Error("optimizer 'ormo_da': worker " + std::to_string(arrival.worker) +
                  " sent a gradient computed at iteration " + std::to_string(arrival.computed_at) +
                  " but the server is at iteration " + std::to_string(iteration_) +
                  "; the engine must give workers the index from iteration() with the parameters");
    if (!momentum_.defined()) {
      momentum_ = at::zeros_like(params);
    } else if (!momentum_.sizes().equals(params.sizes())) {
      throw Error("optimizer 'ormo_da': the momentum holds " + std::to_string(momentum_.numel()) +
                  " values but the model has " + std::to_string(params.numel()) +
                  "; was the checkpoint written for another model?");
    }
    const double eta = lr * rule_.factor(c_, s);
    momentum_.add_(gradient, std::pow(beta_, static_cast<double>(s)) * eta);
    const double coefficient =
        vanilla_step_ ? 1.0 : (1.0 - std::pow(beta_, static_cast<double>(s + 1))) / (1.0 - beta_);
    params.add_(gradient, -eta * coefficient);
    if (whole_iteration || ++arrivals_ == iteration_every_) {
      arrivals_ = 0;
      ++iteration_;
      momentum_.mul_(beta_);
      params.sub_(momentum_);
    }
  }

  State save_state() const override {
    State state{{"iteration", at::scalar_tensor(iteration_, at::kLong)},
                {"arrivals_in_iteration", at::scalar_tensor(arrivals_, at::kLong)}};
    if (momentum_.defined()) state["ordered_momentum"] = momentum_.clone();
    return state;
  }

  void load_state(const State& state) override {
    momentum_ = at::Tensor();
    iteration_ = arrivals_ = 0;
    if (state.empty()) return;
    auto need = [&](const char* name) -> const at::Tensor& {
      auto it = state.find(name);
      if (it == state.end() || !it->second.defined() || it->second.numel() != 1)
        throw Error(std::string("optimizer 'ormo_da': the saved state lacks the counter '") + name +
                    "'; was the checkpoint written by another optimizer?");
      return it->second;
    };
    iteration_ = need("iteration").item<std::int64_t>();
    arrivals_ = need("arrivals_in_iteration").item<std::int64_t>();
    if (iteration_ < 0 || arrivals_ < 0 || arrivals_ >= iteration_every_)
      throw Error("optimizer 'ormo_da': the saved counters (iteration " + std::to_string(iteration_) + ", " +
                  std::to_string(arrivals_) + " arrivals in it) do not fit iteration_every = " +
                  std::to_string(iteration_every_) + "; was the checkpoint written with another setting?");
    auto it = state.find("ordered_momentum");
    if (it != state.end()) momentum_ = it->second.clone();
  }

 private:
  double beta_;
  DelayRule rule_;
  double c_;
  std::int64_t iteration_every_;
  bool vanilla_step_;
  at::Tensor momentum_;         // u; undefined until the first arrival
  std::int64_t iteration_ = 0;  // ite
  std::int64_t arrivals_ = 0;   // cnt
};

}  // namespace

PHALANX_PLUGIN("ormo_da", "1.0") {
  std::vector<std::string> rules;
  std::string rule_help = "delay-adaptive rule, lr_s / lr for staleness s:";
  for (const DelayRule& r : kRules) {
    rules.push_back(r.name);
    rule_help += std::string(rules.size() == 1 ? " " : "; ") + r.name + " = " + r.formula;
  }
  registrar.add_optimizer(
      {"ormo_da",
       "OrMo-DA: ordered momentum with a learning rate that shrinks with the staleness of each gradient",
       {{"beta", ParamType::Double, 0.9, "momentum coefficient, below 1", 0.0, 1.0},
        {"rule", ParamType::String, "inverse", rule_help, {}, {}, rules},
        {"c", ParamType::Double, Value(), "staleness scale of the inverse rule (auto: the number of workers)", 1e-12},
        {"iteration_every", ParamType::Int, Value(),
         "arrivals that close one iteration (auto: the number of workers, as in the paper)", 1},
        {"vanilla_step", ParamType::Bool, false,
         "ablation: step w <- w - lr_s * g on arrival instead of the ordered coefficient (u stays ordered)"}}},
      [](const Params& p, const Context& ctx) {
        const double beta = p.get_double("beta");
        if (beta >= 1.0)
          p.fail("beta", "must be below 1: the step (1 - beta^(s+1)) / (1 - beta) and the momentum never decay at 1");
        const std::int64_t workers = ctx.run().workers;
        const std::int64_t every = p.get_int_or("iteration_every", workers);
        if (every < 1) p.fail("iteration_every", "the run has no workers to take it from; set it explicitly");
        const double c = p.has("c") ? p.get_double("c") : static_cast<double>(workers);
        if (c <= 0.0) p.fail("c", "the run has no workers to take it from; set it explicitly");
        const std::string name = p.get_string("rule");
        const DelayRule* rule =
            std::find_if(std::begin(kRules), std::end(kRules), [&](const DelayRule& r) { return name == r.name; });
        if (rule == std::end(kRules)) p.fail("rule", "unknown rule '" + name + "'");  // choices catch it first
        return std::make_unique<DelayAdaptiveOrderedMomentum>(beta, *rule, c, every, p.get_bool("vanilla_step"));
      });
}
