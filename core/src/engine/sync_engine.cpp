#include "phalanx/core/engine/sync_engine.hpp"

#include <algorithm>
#include <cstring>

#include <ATen/ATen.h>

#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/plugins/plugin_guard.hpp"
#include "phalanx/core/engine/round_parts.hpp"
#include "phalanx/core/engine/run_failure.hpp"
#include "phalanx/core/engine/simulated_run.hpp"
#include "phalanx/core/run/stop_signal.hpp"
#include "phalanx/core/engine/training_parts.hpp"
#include "phalanx/error.hpp"
#include "phalanx/helpers/parallel.hpp"
#include "phalanx/tensor_checks.hpp"

namespace phalanx::core {

namespace {

// dst.copy_(src) for [rows, d] tensors: the attack's rows into the round's message matrix. Rows of float32
// values one after another (the usual case) are copied in blocks of columns on the threads lent to the
// server's thread (phalanx/helpers/parallel.hpp); anything else by ATen.
void copy_rows(at::Tensor& dst, const at::Tensor& src) {
  const bool plain = src.scalar_type() == at::kFloat && dst.scalar_type() == at::kFloat && src.stride(1) == 1 &&
                     dst.stride(1) == 1 && src.size(0) > 0;
  if (!plain) {
    dst.copy_(src);
    return;
  }
  constexpr std::int64_t kColumns = 16384;
  const std::int64_t rows = dst.size(0), d = dst.size(1);
  const float* from = src.data_ptr<float>();
  float* to = dst.data_ptr<float>();
  for_each_block((d + kColumns - 1) / kColumns, [&](std::int64_t k) {
    const std::int64_t start = k * kColumns, width = std::min(kColumns, d - start);
    for (std::int64_t r = 0; r < rows; ++r)
      std::memmove(to + r * dst.stride(0) + start, from + r * src.stride(0) + start, sizeof(float) * width);
  });
}

// The workers whose messages a round computes: all of them, or the honest ones (the first rows) when the
// Byzantine gradients would be overwritten unread (skips_byzantine_gradients).
std::int64_t workers_to_compute(SimulatedRun& run) {
  return skips_byzantine_gradients(run.spec, run.plugins, run.model()) ? run.spec.honest() : run.spec.workers;
}

std::vector<std::int64_t> every_worker(std::int64_t n) {
  std::vector<std::int64_t> all(n);
  for (std::int64_t w = 0; w < n; ++w) all[w] = w;
  return all;
}

// The synchronous engine's loop over rounds. Between two steps everything a later step reads is in the
// shared state (SimulatedRun) and in the three members below the divider: save_checkpoint writes them and
// resume reads them back.
class SyncRounds {
 public:
  explicit SyncRounds(SimulatedRun& run);
  void run();

 private:
  void resume();
  /// Draws every worker's mini-batch, computes the messages into messages_ and advances the clock.
  void compute_round(std::int64_t step);
  /// Lets the attack rewrite the Byzantine rows of messages_.
  void attack(std::int64_t step, const RoundContext& context);
  /// One round: messages, attack, aggregate, update, evaluation. False when it ended the run.
  bool step(std::int64_t step);
  void save_checkpoint(std::int64_t steps_done);

  SimulatedRun& run_;
  const PipelineSpec& spec_;
  const std::int64_t h_, b_;
  const std::int64_t computed_;  // workers_to_compute: the first computed_ rows are computed each round
  at::Tensor messages_;  // [workers, d], the engine's own copies of the round's messages
  const RoundContextSource round_source_;
  const std::vector<std::int64_t> all_workers_;
  std::vector<WorkerTask> tasks_;
  // ---- the loop's own state between two steps
  std::int64_t first_step_ = 0;
  double sim_time_ = 0;
  at::Tensor previous_aggregate_;  // what omniscient attacks see of the last update
};

SyncRounds::SyncRounds(SimulatedRun& run)
    : run_(run), spec_(run.spec), h_(run.spec.honest()), b_(run.spec.byzantine), computed_(workers_to_compute(run)),
      messages_(at::empty({run.spec.workers, run.model().dimension()}, at::kFloat)),
      round_source_(run.spec, run.data()), all_workers_(every_worker(run.spec.workers)),
      tasks_(static_cast<std::size_t>(computed_)) {
  // Rows nobody computes are still handed to the attack (for their shape): zeros, not uninitialised memory.
  if (computed_ < spec_.workers) messages_.narrow(0, computed_, spec_.workers - computed_).zero_();
  resume();
}

void SyncRounds::resume() {
  std::optional<Checkpoint> resumed = run_.take_resume_point();
  if (!resumed) return;
  first_step_ = resumed->get_int("sync/step");
  sim_time_ = resumed->get_double("sync/sim_time");
  if (resumed->has("sync/previous_aggregate")) previous_aggregate_ = resumed->get("sync/previous_aggregate").clone();
  if (run_.logger) run_.logger->info("resumed from {} at step {}", checkpoint_path(run_.out_dir), first_step_);
}

void SyncRounds::save_checkpoint(std::int64_t steps_done) {
  Checkpoint checkpoint = run_.shared_checkpoint();
  checkpoint.put_int("sync/step", steps_done);
  checkpoint.put_double("sync/sim_time", sim_time_);
  if (previous_aggregate_.defined()) checkpoint.put("sync/previous_aggregate", previous_aggregate_);
  run_.write(checkpoint);
}

void SyncRounds::compute_round(std::int64_t step) {
  double round_time = 0;  // a synchronous round waits for its slowest worker
  {
    ScopedTimer timer(run_.result.time.batches);
    for (std::int64_t w = 0; w < spec_.workers; ++w) {
      round_time = std::max(round_time, run_.speed.next(w));
      if (w < computed_) tasks_[w] = draw_batch(spec_, run_.plugins, run_.data(), run_.run.streams[w], w, step);
    }
  }
  run_.compute(tasks_, messages_.narrow(0, 0, computed_));
  for (std::int64_t w = 0; w < h_; ++w) run_.metrics.add_train_loss(tasks_[w].loss);  // in worker order
  sim_time_ += round_time;
}

void SyncRounds::attack(std::int64_t step, const RoundContext& context) {
  EnginePlugins& plugins = run_.plugins;
  ScopedTimer timer(run_.result.time.attack);
  // The Byzantine rows are the engine's own copies of the workers' messages, so the attack gets them as a
  // view (no copy), and an attack that returns them unchanged (none, labelflip) costs nothing more.
  at::Tensor byzantine = messages_.narrow(0, h_, b_);
  AttackRound round{messages_.narrow(0, 0, h_), byzantine, step};
  round.previous_aggregate = previous_aggregate_;
  const EngineDefenceOracle oracle(spec_, plugins, context, at::Tensor());
  round.defence = &oracle;
  round.diagnostics = attack_diagnostics(plugins);
  PhaseScope phase("the attack", Kind::Attack, spec_.attack.name);
  at::Tensor crafted = guard_plugin(plugins.labels.attack, [&] { return plugins.attack->craft(round); });
  require_shape(crafted, {b_, messages_.size(1)}, "attack '" + spec_.attack.name + "'");
  if (!(crafted.data_ptr() == byzantine.data_ptr() && crafted.strides() == byzantine.strides()))
    copy_rows(byzantine, crafted);
}

bool SyncRounds::step(std::int64_t step) {
  RunResult& result = run_.result;
  EnginePlugins& plugins = run_.plugins;
  const std::int64_t total_steps = run_.total_steps;
  const double lr = learning_rate(spec_.schedule, spec_.lr, step, total_steps);
  compute_round(step);
  const RoundContext context =
      round_source_.context(step, all_workers_, std::vector<std::int64_t>(spec_.workers, 0), run_.model());
  // A model that diverged shows first in the honest rows; neither the attack nor the aggregator may be the
  // one to find them.
  if (diverged_on_honest_messages(run_.result, tasks_, h_, "at step " + std::to_string(step)))
    return false;
  if (b_ > 0) attack(step, context);
  // Honest messages are trusted in simulation (a diverging model shows up in the update and parameters
  // below); the Byzantine ones are counted.
  if (b_ > 0) run_.metrics.add_nonfinite(count_nonfinite_rows(messages_.narrow(0, h_, b_)));
  at::Tensor update = [&] {
    ScopedTimer timer(result.time.aggregation);
    return aggregate_rows(spec_, plugins, messages_, context);
  }();
  if (diverged_on_update(result, update, spec_.aggregator.name, "at step " + std::to_string(step))) return false;
  if (b_ > 0 && plugins.attack->omniscient()) previous_aggregate_ = update.clone();
  run_.metrics.add_honest_comparison(update, messages_.narrow(0, 0, h_));
  Arrival arrival;
  arrival.computed_at = step;
  arrival.current = step;
  arrival.sim_time = sim_time_;
  {
    ScopedTimer timer(result.time.update);
    call_plugin("the server update", Kind::Optimizer, spec_.optimizer.name, plugins.labels.optimizer,
                [&] { plugins.optimizer->apply(run_.model().params(), update, arrival, lr); });
  }
  run_.metrics.add_staleness(0);
  if (diverged_on_parameters(result, run_.model().params(), "at step " + std::to_string(step))) return false;
  if ((step + 1) % spec_.eval_every == 0 || step + 1 == total_steps) {
    run_.metrics.evaluate(step + 1, (step + 1) * h_ * spec_.batch_size,
                          static_cast<double>((step + 1) * spec_.workers * spec_.batch_size), lr, sim_time_, result);
    if (diverged_on_test_loss(result, step + 1)) return false;
  }
  report_step(run_.control, step + 1, total_steps);
  return true;
}

void SyncRounds::run() {
  for (std::int64_t step = first_step_; step < run_.total_steps; ++step) {
    set_failure_step(step);
    if (!this->step(step) || step + 1 == run_.total_steps) break;
    if (stop_requested()) {
      save_checkpoint(step + 1);
      run_.interrupt(step + 1);
      break;
    }
    if (run_.checkpoints.due(step + 1, sim_time_)) save_checkpoint(step + 1);
  }
}

}  // namespace

RunResult run_sync(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                   std::shared_ptr<spdlog::logger> logger, const RunControl& control) {
  SimulatedRun run(spec, registry, out_dir, logger, control, [&](const Dataset& data) {
    return budget_steps(spec.budget, data.train_x.size(0), spec.workers, spec.honest(), spec.batch_size);
  });
  if (logger)
    logger->info("run '{}': {} workers ({} Byzantine), model {} with d = {}, {} steps of batch {}", spec.name,
                 spec.workers, spec.byzantine, spec.model.name, run.model().dimension(), run.total_steps,
                 spec.batch_size);
  SyncRounds(run).run();
  return run.finish();
}

}  // namespace phalanx::core
