#include "phalanx/core/engine.hpp"

#include "phalanx/core/engine/async_engine.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/engine/sync_engine.hpp"

namespace phalanx::core {

// The instances made here are dropped, and the run makes its own: a plugin is constructed with the run's
// Context, whose RunInfo holds the run folder, the model's dimension and the total steps, which exist only
// once the run has made its folder, loaded the data (an epoch budget counts its samples) and built the
// model. Handing these over would give plugins a Context that changes after construction, and would keep
// every compare variant's plugins alive until its turn.
void check_plugins(const PipelineSpec& spec, const Registry& registry) {
  EnginePlugins p = make_plugins(spec, registry, run_info(spec, ""), nullptr);
  if (spec.engine == "async") SpeedModel(spec.speed, spec.workers, 0);  // reads and checks a trace file
}

RunResult run_pipeline(const PipelineSpec& spec, const Registry& registry, const std::string& out_dir,
                       std::shared_ptr<spdlog::logger> logger, const RunControl& control) {
  return spec.engine == "async" ? run_async(spec, registry, out_dir, std::move(logger), control)
                                : run_sync(spec, registry, out_dir, std::move(logger), control);
}

}  // namespace phalanx::core
