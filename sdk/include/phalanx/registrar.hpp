// Plugins register their factories here, explicitly, from the function given to PHALANX_PLUGIN: no
// static-initialisation registries. The host validates the user's parameters against PluginInfo::params
// before calling a factory.
#pragma once

#include <functional>
#include <memory>

#include "phalanx/aggregator.hpp"
#include "phalanx/attack.hpp"
#include "phalanx/context.hpp"
#include "phalanx/data.hpp"
#include "phalanx/export.hpp"
#include "phalanx/optimizer.hpp"
#include "phalanx/params.hpp"

namespace phalanx {

class Model;

template <class T>
using Factory = std::function<std::unique_ptr<T>(const Params&, const Context&)>;

class PHALANX_EXPORT Registrar {
 public:
  virtual ~Registrar();
  virtual void add_aggregator(PluginInfo info, Factory<Aggregator> make) = 0;
  virtual void add_preaggregator(PluginInfo info, Factory<PreAggregator> make) = 0;
  virtual void add_attack(PluginInfo info, Factory<Attack> make) = 0;
  virtual void add_optimizer(PluginInfo info, Factory<Optimizer> make) = 0;
  virtual void add_data(PluginInfo info, Factory<DataSource> make) = 0;
  virtual void add_model(PluginInfo info, Factory<Model> make) = 0;
};

}  // namespace phalanx
