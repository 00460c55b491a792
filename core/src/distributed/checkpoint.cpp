#include "phalanx/core/distributed/checkpoint.hpp"

#include "phalanx/core/run/checkpoint.hpp"
#include "phalanx/core/run/run_control.hpp"

namespace phalanx::core {

std::string save_checkpoint(const std::string& dir, const at::Tensor& params, const EnginePlugins& plugins) {
  Checkpoint checkpoint;
  checkpoint.put("params", params);
  checkpoint.put_state("optimizer", plugins.optimizer->save_state());
  checkpoint.put_state("aggregator", plugins.aggregator->save_state());
  for (std::size_t i = 0; i < plugins.preaggregators.size(); ++i)
    checkpoint.put_state("preaggregator" + std::to_string(i), plugins.preaggregators[i]->save_state());
  checkpoint.put_state("attack", plugins.attack->save_state());
  const std::string file = checkpoint_path(dir);
  checkpoint.write(file);
  return file;
}

}  // namespace phalanx::core
