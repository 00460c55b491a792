#include "phalanx/core/sync_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/generated/variable_factories.h>

#include "phalanx/core/flat_model.hpp"
#include "phalanx/core/threads.hpp"
#include "phalanx/core/training_parts.hpp"
#include "phalanx/error.hpp"
#include "phalanx/tensor_checks.hpp"

namespace phalanx::core {

namespace {

// The plugins of one run, each with its own Context. Declared so that objects created by a plugin are
// destroyed before the plugin that created them (worker rules before the optimizer).
struct Plugins {
  std::vector<std::unique_ptr<RunContext>> contexts;
  std::shared_ptr<Optimizer> optimizer;
  std::vector<std::unique_ptr<WorkerRule>> worker_rules;
  std::shared_ptr<Aggregator> aggregator;
  std::vector<std::shared_ptr<PreAggregator>> preaggregators;
  std::shared_ptr<Attack> attack;

  Plugins() = default;
  Plugins(Plugins&&) = default;
  ~Plugins() { worker_rules.clear(); }

  const RunContext& context_for(const PluginChoice& choice, const RunInfo& info,
                                std::shared_ptr<spdlog::logger> logger) {
    contexts.push_back(std::make_unique<RunContext>(info, derive_seed(info.seed, choice.path),
                                                    choice.path + "(" + choice.name + ")", std::move(logger)));
    return *contexts.back();
  }
};

Plugins make_plugins(const PipelineSpec& spec, const Registry& registry, const RunInfo& info,
                     std::shared_ptr<spdlog::logger> logger) {
  Plugins p;
  p.optimizer = registry.make_optimizer(spec.optimizer.name, spec.optimizer.params,
                                        p.context_for(spec.optimizer, info, logger));
  for (const auto& pre : spec.preaggregators)
    p.preaggregators.push_back(registry.make_preaggregator(pre.name, pre.params, p.context_for(pre, info, logger)));
  p.aggregator = registry.make_aggregator(spec.aggregator.name, spec.aggregator.params,
                                          p.context_for(spec.aggregator, info, logger));
  p.attack = registry.make_attack(spec.attack.name, spec.attack.params, p.context_for(spec.attack, info, logger));
  return p;
}

RunInfo run_info(const PipelineSpec& spec, const std::string& out_dir) {
  RunInfo info;
  info.workers = spec.workers;
  info.byzantine = spec.byzantine;
  info.seed = spec.seed;
  info.run_dir = out_dir;
  return info;
}

// One worker's view of its partition: an endless sequence of mini-batches, reshuffled every pass.
class BatchStream {
 public:
  BatchStream(at::Tensor indices, std::uint64_t seed) : indices_(std::move(indices)), rng_(seed) {
    order_.resize(indices_.size(0));
    reshuffle();
  }
  at::Tensor next(std::int64_t batch) {
    std::vector<std::int64_t> picked;
    picked.reserve(batch);
    auto idx = indices_.accessor<std::int64_t, 1>();
    while (static_cast<std::int64_t>(picked.size()) < batch) {
      if (cursor_ == order_.size()) reshuffle();
      picked.push_back(idx[order_[cursor_++]]);
    }
    return at::tensor(picked, at::kLong);
  }

 private:
  void reshuffle() {
    for (std::size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<std::int64_t>(i);
    std::shuffle(order_.begin(), order_.end(), rng_);
    cursor_ = 0;
  }
  at::Tensor indices_;
  std::mt19937_64 rng_;
  std::vector<std::int64_t> order_;
  std::size_t cursor_ = 0;
};

void require_shape(const at::Tensor& t, at::IntArrayRef shape, const std::string& who) {
  if (!t.defined() || t.sizes() != shape || t.scalar_type() != at::kFloat) {
    std::string got = t.defined() ? std::string(t.sizes().vec().empty() ? "[]" : "") : "an undefined tensor";
    if (t.defined()) {
      got = "[";
      for (std::size_t i = 0; i < t.sizes().size(); ++i) got += (i ? ", " : "") + std::to_string(t.size(i));
      got += "] " + std::string(at::toString(t.scalar_type()));
    }
    std::string want = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
    throw Error(who + " returned " + got + ", expected " + want + "] Float");
  }
}

}  // namespace

void check_plugins(const PipelineSpec& spec, const Registry& registry) {
  Plugins p = make_plugins(spec, registry, run_info(spec, ""), nullptr);
  p.worker_rules.push_back(p.optimizer->make_worker_rule(0));
}

RunResult run_sync(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                   std::shared_ptr<spdlog::logger> logger) {
  const auto started = std::chrono::steady_clock::now();
  set_compute_threads(static_cast<int>(spec.threads));
  std::unique_ptr<RunOutput> output;
  if (!out_dir.empty()) {
    output = std::make_unique<RunOutput>(out_dir);
    output->write_config(spec.resolved);
  }
  RunInfo info = run_info(spec, out_dir);

  // Data first: its shape decides the model.
  RunContext data_ctx(info, derive_seed(spec.seed, "data"), "data(" + spec.data.name + ")", logger);
  Dataset data = registry.make_data(spec.data.name, spec.data.params, data_ctx)->load();
  if (!data.train_x.defined() || !data.train_y.defined() || !data.test_x.defined() || !data.test_y.defined() ||
      data.classes < 2 || data.train_x.size(0) != data.train_y.size(0) || data.test_x.size(0) != data.test_y.size(0))
    throw Error("data '" + spec.data.name + "' returned an inconsistent data set (tensors missing, classes < 2, or "
                "sample and label counts differ)");
  if (logger)
    logger->info("data: {} ({} train, {} test, {} classes)", data.description, data.train_x.size(0),
                 data.test_x.size(0), data.classes);

  std::vector<at::Tensor> partitions = partition_indices(data.train_y, data.classes, spec.workers, spec.partition,
                                                         spec.dirichlet_alpha, derive_seed(spec.seed, "partition"));
  std::vector<BatchStream> streams;
  for (std::int64_t w = 0; w < spec.workers; ++w)
    streams.emplace_back(partitions[w], derive_seed(spec.seed, "worker/" + std::to_string(w) + "/batches"));

  // LibTorch initialises layers from its global generator: seed it right before building.
  at::manual_seed(derive_seed(spec.seed, "model"));
  RunContext model_ctx(info, derive_seed(spec.seed, "model"), "model(" + spec.model.name + ")", logger);
  FlatModel model(registry.make_model(spec.model.name, spec.model.params, model_ctx)
                      ->build(data.sample_shape, data.classes));
  const std::int64_t d = model.dimension();
  info.dimension = d;
  const std::int64_t total_steps =
      budget_steps(spec.budget, data.train_x.size(0), spec.workers, spec.honest(), spec.batch_size);
  info.total_steps = total_steps;

  Plugins plugins = make_plugins(spec, registry, info, logger);
  for (std::int64_t w = 0; w < spec.workers; ++w) {
    plugins.worker_rules.push_back(plugins.optimizer->make_worker_rule(w));
    if (!plugins.worker_rules.back()) throw Error("optimizer '" + spec.optimizer.name + "' returned no worker rule");
  }
  if (logger)
    logger->info("run '{}': {} workers ({} Byzantine), model {} with d = {}, {} steps of batch {}", spec.name,
                 spec.workers, spec.byzantine, spec.model.name, d, total_steps, spec.batch_size);

  const std::int64_t h = spec.honest(), b = spec.byzantine;
  RunResult result;
  result.total_steps = total_steps;
  MetricsRow row;
  double loss_sum = 0;
  std::int64_t loss_count = 0;
  std::int64_t nonfinite_total = 0;
  at::Tensor messages = at::empty({spec.workers, d}, at::kFloat);

  auto evaluate = [&](std::int64_t steps_done, double lr) {
    FlatModel::Evaluation e = model.evaluate(data.test_x, data.test_y, spec.eval_batch_size);
    row.step = steps_done;
    row.gradients = steps_done * h * spec.batch_size;
    row.epoch = static_cast<double>(steps_done * spec.workers * spec.batch_size) /
                static_cast<double>(data.train_x.size(0));
    row.wall_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    row.lr = lr;
    row.train_loss = loss_count ? loss_sum / static_cast<double>(loss_count) : std::nan("");
    row.test_loss = e.loss;
    row.test_accuracy = e.accuracy;
    row.nonfinite_messages = nonfinite_total;
    loss_sum = 0;
    loss_count = 0;
    if (output) output->append(row);
    result.last = row;
    result.has_last = true;
    if (logger)
      logger->info("step {:>6}/{} epoch {:.2f} lr {:.4g} train_loss {:.4f} test_loss {:.4f} test_acc {:.2f}%",
                   row.step, total_steps, row.epoch, row.lr, row.train_loss, row.test_loss, 100 * row.test_accuracy);
  };

  double lr = learning_rate(spec.schedule, spec.lr, 0, total_steps);
  for (std::int64_t step = 0; step < total_steps; ++step) {
    lr = learning_rate(spec.schedule, spec.lr, step, total_steps);
    for (std::int64_t w = 0; w < spec.workers; ++w) {
      at::Tensor batch = streams[w].next(spec.batch_size);
      at::Tensor x = data.train_x.index_select(0, batch);
      at::Tensor y = data.train_y.index_select(0, batch);
      const bool byzantine = w >= h;
      if (byzantine) y = plugins.attack->poison_labels(y, data.classes);
      auto [loss, gradient] = model.loss_and_gradient(x, y);
      if (!byzantine) loss_sum += loss, ++loss_count;
      if (spec.weight_decay > 0) gradient.add_(model.params(), spec.weight_decay);
      at::Tensor message = plugins.worker_rules[w]->message(gradient, step);
      require_shape(message, {d}, "optimizer '" + spec.optimizer.name + "' worker rule");
      messages[w].copy_(message);
    }
    if (b > 0) {
      AttackRound round{messages.narrow(0, 0, h), messages.narrow(0, h, b).clone(), step};
      at::Tensor crafted = plugins.attack->craft(round);
      require_shape(crafted, {b, d}, "attack '" + spec.attack.name + "'");
      messages.narrow(0, h, b).copy_(crafted);
    }
    nonfinite_total += count_nonfinite_rows(messages);
    at::Tensor inputs = messages;
    for (std::size_t i = 0; i < plugins.preaggregators.size(); ++i) {
      inputs = plugins.preaggregators[i]->transform(inputs);
      if (!inputs.defined() || inputs.dim() != 2 || inputs.size(1) != d || inputs.size(0) < 1)
        throw Error("pre-aggregator '" + spec.preaggregators[i].name + "' must return [n', " + std::to_string(d) +
                    "] rows");
    }
    at::Tensor update = plugins.aggregator->aggregate(inputs);
    require_shape(update, {d}, "aggregator '" + spec.aggregator.name + "'");
    if (!at::isfinite(update).all().item<bool>()) {
      result.status = "diverged";
      result.message = "aggregator '" + spec.aggregator.name + "' produced a non-finite update at step " +
                       std::to_string(step) + "; the run stopped (the model would be poisoned)";
      break;
    }
    Arrival arrival;
    arrival.computed_at = step;
    arrival.current = step;
    plugins.optimizer->apply(model.params(), update, arrival, lr);
    if (!at::isfinite(model.params()).all().item<bool>()) {
      result.status = "diverged";
      result.message = "parameters became non-finite at step " + std::to_string(step) +
                       "; lower optimizer.lr or use a robust aggregator";
      break;
    }
    const bool last = step + 1 == total_steps;
    if ((step + 1) % spec.eval_every == 0 || last) evaluate(step + 1, lr);
  }
  if (result.status != "ok" && logger) logger->warn("{}", result.message);
  if (output) output->write_summary(result.status, result.message, result.has_last ? &result.last : nullptr,
                                    total_steps);
  return result;
}

}  // namespace phalanx::core
