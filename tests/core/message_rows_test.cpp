// compute_messages with the round's message matrix: an honest worker's momentum lives in its row from the
// second round on (no copy), a Byzantine worker's stays in its own buffer (the attack overwrites its row),
// and every row holds what a separate MomentumWorkerRule fed the same gradients gives, bit for bit.
#include <ATen/ATen.h>

#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/engine/training_parts.hpp"
#include "phalanx/core/engine/worker_pool.hpp"
#include "phalanx/optimizer.hpp"
#include "small_run.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

TEST(MessageRows, HonestMomentumStaysInItsRowAndByzantineMomentumDoesNot) {
  const core::PipelineSpec spec = resolve_config(kSmallRun, {"optimizer={name: byzsgdm, lr: 0.05, beta: 0.9}"});
  const RunInfo info = core::run_info(spec, "");
  core::EnginePlugins plugins = core::make_plugins(spec, builtin_registry(), info, nullptr);
  const Dataset data = core::load_data(spec, builtin_registry(), info, nullptr);
  std::unique_ptr<core::FlatModel> model = core::build_model(spec, builtin_registry(), info, data, nullptr);
  std::vector<core::BatchStream> streams = core::make_streams(spec, data);
  const std::int64_t n = spec.workers, h = spec.honest(), d = model->dimension();
  ASSERT_GT(spec.byzantine, 0);
  core::WorkerPool pool(1);
  core::TimeBreakdown time;
  at::Tensor rows = at::empty({n, d});
  std::vector<MomentumWorkerRule> references(static_cast<std::size_t>(n), MomentumWorkerRule(0.9));
  for (std::int64_t round = 0; round < 4; ++round) {
    std::vector<core::WorkerTask> tasks;
    for (std::int64_t w = 0; w < n; ++w)
      tasks.push_back(core::draw_batch(spec, plugins, data, streams[static_cast<std::size_t>(w)], w, round));
    core::compute_messages(spec, plugins, pool, {model.get()}, tasks, time, rows);
    for (std::int64_t w = 0; w < n; ++w) {
      const core::WorkerTask& task = tasks[static_cast<std::size_t>(w)];
      const at::Tensor gradient = model->loss_and_gradient(task.x, task.y).second;  // the parameters do not move
      const at::Tensor expected = references[static_cast<std::size_t>(w)].message(gradient, round);
      ASSERT_TRUE(at::equal(rows[w], expected)) << "round " << round << ", worker " << w;
      const at::Tensor momentum = plugins.worker_rules[static_cast<std::size_t>(w)]->message(gradient, round);
      // The probe above advanced the rule once more; take the reference the same step.
      references[static_cast<std::size_t>(w)].message(gradient, round);
      EXPECT_EQ(momentum.data_ptr() == rows[w].data_ptr(), w < h)
          << "round " << round << ", worker " << w << ": only an honest worker's momentum lives in its row";
    }
    rows.narrow(0, h, n - h).fill_(-1.0f);  // what an attack does to the Byzantine rows
  }
}

}  // namespace
}  // namespace phalanx::test
