#include "phalanx/core/engine/simulated_run.hpp"

#include <ATen/ATen.h>

#include "phalanx/core/engine/training_parts.hpp"

namespace phalanx::core {

namespace {

// The budget in server updates, recorded in the run's info before any plugin is made (plugins read it).
std::int64_t record_total_steps(RunSetup& run, const SimulatedRun::UpdateCount& updates) {
  run.info.total_steps = updates(run.data);
  return run.info.total_steps;
}

std::vector<FlatModel*> model_slots(FlatModel& model, const std::vector<std::unique_ptr<FlatModel>>& replicas) {
  std::vector<FlatModel*> models{&model};
  for (const auto& r : replicas) models.push_back(r.get());
  return models;
}

}  // namespace

SimulatedRun::SimulatedRun(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                           std::shared_ptr<spdlog::logger> logger, const RunControl& control,
                           const UpdateCount& updates)
    : spec(spec), logger(logger), control(control), out_dir(out_dir), checkpoints(control, spec, out_dir),
      resumed(checkpoints.resume_point()),
      run(prepare_run(spec, registry, out_dir, logger, resumed ? resumed->get_int("metrics/rows") : -1)),
      total_steps(record_total_steps(run, updates)),
      plugins(make_plugins(spec, registry, run.info, logger)),
      speed(spec.speed, spec.workers, derive_seed(spec.seed, "speed")),
      metrics(spec, run.data, *run.model, run.output.get(), logger, total_steps),
      pool(gradient_threads(spec.threads, spec.workers)),
      replicas(build_replicas(spec, registry, run.info, run.data, *run.model, pool.slots(), logger)),
      models(model_slots(*run.model, replicas)),
      lent_threads([this](std::int64_t count, const std::function<void(std::int64_t)>& block) {
        pool.run(count, [&](std::int64_t i, int /*slot*/) { block(i); });
      }) {
  result.total_steps = total_steps;
  metrics.record_diagnostics(plugins.diagnostics);
  metrics.use_threads(pool, models);
}

std::optional<Checkpoint> SimulatedRun::take_resume_point() {
  if (resumed) load_shared_state(*resumed, run, plugins, speed, metrics, result);
  std::optional<Checkpoint> taken = std::move(resumed);
  resumed.reset();
  return taken;
}

Checkpoint SimulatedRun::shared_checkpoint() {
  Checkpoint checkpoint;
  save_shared_state(checkpoint, run, plugins, speed, metrics, result);
  return checkpoint;
}

void SimulatedRun::compute(std::vector<WorkerTask>& tasks, at::Tensor rows) {
  compute_messages(spec, plugins, pool, models, tasks, result.time, rows);
}

RunResult SimulatedRun::finish() {
  if (result.status != RunStatus::interrupted) checkpoints.remove();
  result.time.total += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (result.status != RunStatus::ok && logger) logger->warn("{}", result.message);
  if (run.output)
    run.output->write_summary(result.status, result.message, result.has_last ? &result.last : nullptr, total_steps,
                              &result.time);
  return result;
}

}  // namespace phalanx::core
