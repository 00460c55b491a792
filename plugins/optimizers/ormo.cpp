// The OrMo family: ordered momentum for asynchronous SGD (Shi, Yang, Li, "Ordered Momentum for Asynchronous
// SGD", NeurIPS 2024, arXiv 2407.19234), in the eager server form docs/ormo.md describes. One library
// registers two optimizers that share the ordered server and differ only in the delay rule:
//   ormo     the paper's OrMo: every gradient keeps the learning rate eta it arrived with;
//   ormo_da  OrMo-DA: eta is scaled by a delay-adaptive factor of the gradient's staleness.
//
// Synchronous momentum groups gradients by the iteration they were computed at; OrMo keeps that grouping
// when gradients arrive late and out of order. The server holds the ordered momentum u, its iteration index
// ite and the number cnt of arrivals in the open iteration (all 0 at the start). Workers pull (w, ite) --
// iteration() returns ite -- and push raw gradients with the index they pulled. On the arrival of g
// computed at iteration j:
//
//   s     = ite - j                                        staleness in iterations, >= 0
//   eta_s = eta * factor(s)                                factor = 1 for ormo
//   u    += beta^s * eta_s * g                             g joins its own group j
//   w    -= eta_s * (1 - beta^(s+1)) / (1 - beta) * g      the steps g would have taken since iteration j
//           (vanilla_step: w -= eta_s * g, the paper's ablation; u stays ordered)
//   cnt  += 1
//   if cnt == iteration_every:  cnt = 0;  ite += 1;  u *= beta;  w -= u
//
// so that after any arrivals u = sum beta^(ite-j) eta_s g and w = w0 - sum eta_s (1-beta^(ite-j+1))/(1-beta) g
// (invariants 1 and 2 of docs/ormo.md), and beta = 0 is ASGD (invariant 4). eta is the learning rate of the
// arrival, so under a schedule each gradient keeps the eta it arrived with.
//
// Relation to SSGDm (invariant 3). With fresh arrivals in order, K per iteration, OrMo's u is beta times
// SSGDm's u and OrMo's w is SSGDm's w minus beta * u_SSGDm: the eager closure applies the next momentum
// step before the workers pull, so they compute at SSGDm's look-ahead point (the Nesterov form of SSGDm).
// Invariant 2 forces this (it weighs a gradient of iteration j by one power of beta more than SSGDm's w
// does). Equal iterates with gradients taken at SSGDm's own w would need w -= eta (1 - beta^s)/(1 - beta) g
// on arrival and "w -= u; u *= beta" at the closure, which breaks invariant 2 and, since fresh gradients
// would then wait for the closure, invariant 4. tests/plugins/async_optimizer_test.cpp checks the relation.
//
// OrMo-DA's delay rules (the paper's exact rule was not recoverable; the default is **(ours)**, and the rule
// is a parameter so the alternatives sit in one table, kRules below):
//   inverse:   factor(s) = min(1, c / (s + 1))     full step up to staleness c - 1, then ~ 1 / staleness
//   constant:  factor(s) = 1                       no adaptation: the same arithmetic as ormo, bit for bit
// ormo is the constant rule without the parameters that select a rule.
//
// The paper closes an iteration every K arrivals; that count is the **(ours)** option iteration_every.
// Under the synchronous engine (Arrival::worker == -1) the aggregate of a round is one whole iteration:
// staleness 0, and it closes the iteration at once.
//
// ormo:
// | parameter       | default         | meaning                                                        |
// |-----------------|-----------------|----------------------------------------------------------------|
// | beta            | 0.9             | momentum, in [0, 1)                                            |
// | iteration_every | auto: workers K | arrivals per iteration **(ours)**                              |
// | vanilla_step    | false           | ablation: w -= eta * g on arrival instead of the ordered step  |
//
// ormo_da:
// | parameter       | default         | meaning                                                        |
// |-----------------|-----------------|----------------------------------------------------------------|
// | beta            | 0.9             | momentum, in [0, 1)                                            |
// | rule            | inverse         | delay-adaptive rule: inverse or constant                       |
// | c               | auto: workers K | staleness scale of the inverse rule (> 0)                      |
// | iteration_every | auto: workers K | arrivals per iteration **(ours)**                              |
// | vanilla_step    | false           | ablation: w -= eta_s * g on arrival instead of the ordered step |
//
// State (both): "ordered_momentum" (u, absent before the first arrival), "iteration" (ite) and
// "arrivals_in_iteration" (cnt), 0-dim int64.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/helpers/state_checks.hpp"
#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

// The delay-adaptive rules of ormo_da: add one line here to add a rule; the parameter's choices and help
// come from this table.
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
constexpr const DelayRule& kConstantRule = kRules[1];

class OrderedMomentum : public Optimizer {
 public:
  // `plugin` is the registered name ("ormo" or "ormo_da"), for the messages.
  OrderedMomentum(const char* plugin, double beta, const DelayRule& rule, double c, std::int64_t iteration_every,
                  bool vanilla_step)
      : plugin_(plugin), beta_(beta), rule_(rule), c_(c), iteration_every_(iteration_every),
        vanilla_step_(vanilla_step) {}

  std::unique_ptr<WorkerRule> make_worker_rule(std::int64_t) const override {
    return std::make_unique<IdentityWorkerRule>();
  }

  std::int64_t iteration() const override { return iteration_; }

  void apply(at::Tensor& params, const at::Tensor& gradient, const Arrival& arrival, double lr) override {
    const bool whole_iteration = arrival.worker < 0;
    const std::int64_t s = whole_iteration ? 0 : iteration_ - arrival.computed_at;
    if (s < 0)
      throw Error(prefix() + "worker " + std::to_string(arrival.worker) + " sent a gradient computed at iteration " +
                  std::to_string(arrival.computed_at) + " but the server is at iteration " +
                  std::to_string(iteration_) +
                  "; the engine must give workers the index from iteration() with the parameters");
    zeros_or_require_like(momentum_, params, prefix() + "the momentum");
    // The constant rule's factor is exactly 1, so eta == lr bit for bit and ormo keeps its arithmetic.
    const double eta = lr * rule_.factor(c_, s);
    momentum_.add_(gradient, std::pow(beta_, static_cast<double>(s)) * eta);
    // For s = 0 the ordered coefficient is exactly 1 in floating point, so fresh gradients (and beta = 0)
    // take the same step as ASGD, bit for bit.
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
        throw Error(prefix() + "the saved state lacks the counter '" + name +
                    "'; was the checkpoint written by another optimizer?");
      return it->second;
    };
    iteration_ = need("iteration").item<std::int64_t>();
    arrivals_ = need("arrivals_in_iteration").item<std::int64_t>();
    if (iteration_ < 0 || arrivals_ < 0 || arrivals_ >= iteration_every_)
      throw Error(prefix() + "the saved counters (iteration " + std::to_string(iteration_) + ", " +
                  std::to_string(arrivals_) + " arrivals in it) do not fit iteration_every = " +
                  std::to_string(iteration_every_) + "; was the checkpoint written with another setting?");
    auto it = state.find("ordered_momentum");
    if (it != state.end()) momentum_ = it->second.clone();
  }

 private:
  std::string prefix() const { return std::string("optimizer '") + plugin_ + "': "; }

  const char* plugin_;
  double beta_;
  DelayRule rule_;
  double c_;
  std::int64_t iteration_every_;
  bool vanilla_step_;
  at::Tensor momentum_;         // u; undefined until the first arrival (the dimension is not known before)
  std::int64_t iteration_ = 0;  // ite
  std::int64_t arrivals_ = 0;   // cnt
};

// The parameters both optimizers share; `lr` names the rate in the vanilla_step help.
ParamSpec beta_param() { return {"beta", ParamType::Double, 0.9, "momentum coefficient, below 1", 0.0, 1.0}; }
ParamSpec iteration_every_param() {
  return {"iteration_every", ParamType::Int, Value(),
          "arrivals that close one iteration (auto: the number of workers, as in the paper)", 1};
}
ParamSpec vanilla_step_param(const std::string& lr) {
  return {"vanilla_step", ParamType::Bool, false,
          "ablation: step w <- w - " + lr + " * g on arrival instead of the ordered coefficient (u stays ordered)"};
}

double resolve_beta(const Params& p) {
  const double beta = p.get_double("beta");
  if (beta >= 1.0)
    p.fail("beta", "must be below 1: the step (1 - beta^(s+1)) / (1 - beta) and the momentum never decay at 1");
  return beta;
}

std::int64_t resolve_iteration_every(const Params& p, const Context& c) {
  const std::int64_t every = p.get_int_or("iteration_every", c.run().workers);
  if (every < 1) p.fail("iteration_every", "the run has no workers to take it from; set it explicitly");
  return every;
}

void add_ormo(Registrar& registrar) {
  registrar.add_optimizer(
      {"ormo",
       "OrMo: ordered momentum for asynchronous SGD, gradients weighted by the iteration they were computed at",
       {beta_param(), iteration_every_param(), vanilla_step_param("lr")}},
      [](const Params& p, const Context& c) {
        const double beta = resolve_beta(p);
        return std::make_unique<OrderedMomentum>("ormo", beta, kConstantRule, 1.0, resolve_iteration_every(p, c),
                                                 p.get_bool("vanilla_step"));
      });
}

void add_ormo_da(Registrar& registrar) {
  std::vector<std::string> rules;
  std::string rule_help = "delay-adaptive rule, lr_s / lr for staleness s:";
  for (const DelayRule& r : kRules) {
    rules.push_back(r.name);
    rule_help += std::string(rules.size() == 1 ? " " : "; ") + r.name + " = " + r.formula;
  }
  registrar.add_optimizer(
      {"ormo_da",
       "OrMo-DA: ordered momentum with a learning rate that shrinks with the staleness of each gradient",
       {beta_param(),
        {"rule", ParamType::String, "inverse", rule_help, {}, {}, rules},
        {"c", ParamType::Double, Value(), "staleness scale of the inverse rule (auto: the number of workers)", 1e-12},
        iteration_every_param(),
        vanilla_step_param("lr_s")}},
      [](const Params& p, const Context& ctx) {
        const double beta = resolve_beta(p);
        const std::int64_t every = resolve_iteration_every(p, ctx);
        const double c = p.has("c") ? p.get_double("c") : static_cast<double>(ctx.run().workers);
        if (c <= 0.0) p.fail("c", "the run has no workers to take it from; set it explicitly");
        const std::string name = p.get_string("rule");
        const DelayRule* rule =
            std::find_if(std::begin(kRules), std::end(kRules), [&](const DelayRule& r) { return name == r.name; });
        if (rule == std::end(kRules)) p.fail("rule", "unknown rule '" + name + "'");  // choices catch it first
        return std::make_unique<OrderedMomentum>("ormo_da", beta, *rule, c, every, p.get_bool("vanilla_step"));
      });
}

}  // namespace

PHALANX_PLUGIN("ormo", "1.0") {
  add_ormo(registrar);
  add_ormo_da(registrar);
}
