#include "phalanx/core/engine/sync_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <ATen/ATen.h>

#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/plugins/plugin_guard.hpp"
#include "phalanx/core/engine/round_parts.hpp"
#include "phalanx/core/engine/run_checkpoint.hpp"
#include "phalanx/core/engine/run_failure.hpp"
#include "phalanx/core/run/stop_signal.hpp"
#include "phalanx/core/engine/training_parts.hpp"
#include "phalanx/error.hpp"
#include "phalanx/tensor_checks.hpp"

namespace phalanx::core {

namespace {
std::vector<std::int64_t> every_worker(std::int64_t n) {
  std::vector<std::int64_t> all(n);
  for (std::int64_t w = 0; w < n; ++w) all[w] = w;
  return all;
}
}  // namespace

RunResult run_sync(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                   std::shared_ptr<spdlog::logger> logger, const RunControl& control) {
  RunCheckpointer checkpoints(control, spec, out_dir);
  std::optional<Checkpoint> resumed = checkpoints.resume_point();
  RunSetup run = prepare_run(spec, registry, out_dir, logger, resumed ? resumed->get_int("metrics/rows") : -1);
  RunInfo& info = run.info;
  const Dataset& data = run.data;
  std::vector<BatchStream>& streams = run.streams;
  std::unique_ptr<FlatModel>& model = run.model;
  std::unique_ptr<RunOutput>& output = run.output;
  const std::int64_t d = model->dimension();
  const std::int64_t total_steps =
      budget_steps(spec.budget, data.train_x.size(0), spec.workers, spec.honest(), spec.batch_size);
  info.total_steps = total_steps;
  EnginePlugins plugins = make_plugins(spec, registry, info, logger);
  SpeedModel speed(spec.speed, spec.workers, derive_seed(spec.seed, "speed"));
  if (logger)
    logger->info("run '{}': {} workers ({} Byzantine), model {} with d = {}, {} steps of batch {}", spec.name,
                 spec.workers, spec.byzantine, spec.model.name, d, total_steps, spec.batch_size);

  const std::int64_t h = spec.honest(), b = spec.byzantine;
  RunResult result;
  result.total_steps = total_steps;
  const auto started = std::chrono::steady_clock::now();
  MetricsTracker metrics(spec, data, *model, output.get(), logger, total_steps);
  metrics.record_diagnostics(plugins.diagnostics);
  at::Tensor messages = at::empty({spec.workers, d}, at::kFloat);
  const RoundContextSource round_source(spec, data);
  const std::vector<std::int64_t> all_workers = every_worker(spec.workers);
  at::Tensor previous_aggregate;  // what omniscient attacks see of the last update
  const int threads = gradient_threads(spec.threads, spec.workers);
  WorkerPool pool(threads);
  const std::vector<std::unique_ptr<FlatModel>> replicas =
      build_replicas(spec, registry, info, data, *model, threads, logger);
  std::vector<FlatModel*> models{model.get()};
  for (const auto& r : replicas) models.push_back(r.get());
  std::vector<WorkerTask> tasks(spec.workers);
  double sim_time = 0;
  std::int64_t first_step = 0;
  if (resumed) {
    load_shared_state(*resumed, run, plugins, speed, metrics, result);
    first_step = resumed->get_int("sync/step");
    sim_time = resumed->get_double("sync/sim_time");
    if (resumed->has("sync/previous_aggregate")) previous_aggregate = resumed->get("sync/previous_aggregate").clone();
    if (logger) logger->info("resumed from {} at step {}", checkpoint_path(out_dir), first_step);
    resumed.reset();  // its tensors (a copy of the model and all plugin state) are not needed any more
  }
  // Between two steps everything a later step reads is in the plugins, the streams, the speed model, the
  // metrics sums and these two numbers.
  auto save_checkpoint_after = [&](std::int64_t steps_done) {
    Checkpoint checkpoint;
    save_shared_state(checkpoint, run, plugins, speed, metrics, result);
    checkpoint.put_int("sync/step", steps_done);
    checkpoint.put_double("sync/sim_time", sim_time);
    if (previous_aggregate.defined()) checkpoint.put("sync/previous_aggregate", previous_aggregate);
    checkpoints.write(checkpoint);
  };

  for (std::int64_t step = first_step; step < total_steps; ++step) {
    set_failure_step(step);
    const double lr = learning_rate(spec.schedule, spec.lr, step, total_steps);
    double round_time = 0;  // a synchronous round waits for its slowest worker
    {
      ScopedTimer timer(result.time.batches);
      for (std::int64_t w = 0; w < spec.workers; ++w) {
        round_time = std::max(round_time, speed.next(w));
        tasks[w] = draw_batch(spec, plugins, data, streams[w], w, step);
      }
    }
    compute_messages(spec, plugins, pool, models, tasks, result.time, messages);
    for (std::int64_t w = 0; w < h; ++w) metrics.add_train_loss(tasks[w].loss);  // in worker order
    sim_time += round_time;
    const RoundContext context =
        round_source.context(step, all_workers, std::vector<std::int64_t>(spec.workers, 0), *model);
    if (b > 0 && diverged_on_honest_rows(result, *plugins.attack, messages.narrow(0, 0, h),
                                         "at step " + std::to_string(step)))
      break;
    if (b > 0) {
      ScopedTimer timer(result.time.attack);
      // The Byzantine rows are the engine's own copies of the workers' messages, so the attack gets them as a
      // view (no copy), and an attack that returns them unchanged (none, labelflip) costs nothing more.
      at::Tensor byzantine = messages.narrow(0, h, b);
      AttackRound round{messages.narrow(0, 0, h), byzantine, step};
      round.previous_aggregate = previous_aggregate;
      const EngineDefenceOracle oracle(spec, plugins, context, at::Tensor());
      round.defence = &oracle;
      round.diagnostics = attack_diagnostics(plugins);
      PhaseScope phase("the attack", Kind::Attack, spec.attack.name);
      at::Tensor crafted = guard_plugin(plugins.labels.attack, [&] { return plugins.attack->craft(round); });
      require_shape(crafted, {b, d}, "attack '" + spec.attack.name + "'");
      if (!(crafted.data_ptr() == byzantine.data_ptr() && crafted.strides() == byzantine.strides()))
        byzantine.copy_(crafted);
    }
    // Honest messages are trusted in simulation (a diverging model shows up in the update and parameters
    // below); the Byzantine ones are counted.
    if (b > 0) metrics.add_nonfinite(count_nonfinite_rows(messages.narrow(0, h, b)));
    at::Tensor update = [&] {
      ScopedTimer timer(result.time.aggregation);
      return aggregate_rows(spec, plugins, messages, context);
    }();
    if (diverged_on_update(result, update, spec.aggregator.name, "at step " + std::to_string(step))) break;
    if (b > 0 && plugins.attack->omniscient()) previous_aggregate = update.clone();
    metrics.add_honest_comparison(update, messages.narrow(0, 0, h));
    Arrival arrival;
    arrival.computed_at = step;
    arrival.current = step;
    arrival.sim_time = sim_time;
    {
      ScopedTimer timer(result.time.update);
      call_plugin("the server update", Kind::Optimizer, spec.optimizer.name, plugins.labels.optimizer,
                  [&] { plugins.optimizer->apply(model->params(), update, arrival, lr); });
    }
    metrics.add_staleness(0);
    if (diverged_on_parameters(result, model->params(), "at step " + std::to_string(step))) break;
    if ((step + 1) % spec.eval_every == 0 || step + 1 == total_steps) {
      metrics.evaluate(step + 1, (step + 1) * h * spec.batch_size,
                       static_cast<double>((step + 1) * spec.workers * spec.batch_size), lr, sim_time, result);
      if (diverged_on_test_loss(result, step + 1)) break;
    }
    report_step(control, step + 1, total_steps);
    if (step + 1 == total_steps) break;
    if (stop_requested()) {
      save_checkpoint_after(step + 1);
      mark_interrupted(result, step + 1, checkpoints);
      break;
    }
    if (checkpoints.due(step + 1, sim_time)) save_checkpoint_after(step + 1);
  }
  if (result.status != RunStatus::interrupted) checkpoints.remove();
  result.time.total += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (result.status != RunStatus::ok && logger) logger->warn("{}", result.message);
  if (output) output->write_summary(result.status, result.message, result.has_last ? &result.last : nullptr,
                                    total_steps, &result.time);
  return result;
}

}  // namespace phalanx::core
