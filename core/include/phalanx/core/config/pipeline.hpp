// A validated pipeline: the YAML tree checked against the core's own sections and every plugin's
// declared parameters, with defaults filled in. Nothing runs until this succeeds, and every error
// carries the file:line and config path to fix.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/params.hpp"
#include "phalanx/value.hpp"

namespace phalanx::core {

struct PluginChoice {
  std::string name;
  std::string path;  // config path, e.g. "aggregator.pre[0]"
  Params params;
};

struct ScheduleSpec {
  std::string name = "constant";  // constant | cosine | step
  std::int64_t warmup_steps = 0;  // linear warm-up in front of any schedule
  double step_gamma = 0.1;        // step: multiply by gamma ...
  std::int64_t step_every = 0;    // ... every this many steps (0: a third of the run)
  double min_lr = 0.0;            // cosine floor
};

/// Simulated compute time of workers (engine.speed).
struct SpeedSpec {
  std::string name = "homogeneous";  // homogeneous | heterogeneous | gamma | trace
  double time = 1.0;                 // mean compute time of the fastest worker
  double spread = 0.0;               // heterogeneous/gamma: worker k takes time * (1 + k * spread)
  double slow_fraction = 0.0;        // ... and the first round(slow_fraction * n) workers are
  double slow_factor = 1.0;          //     slow_factor times slower
  double shape = 100.0;              // gamma: each step's time is base * Gamma(shape, 1 / shape)
  std::string file;                  // trace: line k holds worker k's times, cycled
  double comm = 0.0;                 // every model: a gradient's round trip (push it, pull the parameters)
                                     // adds this time to its compute time; a sync round pays it once
};

/// How many steps a run takes: exactly one of the three is set in the config.
struct BudgetSpec {
  std::string unit = "steps";  // steps | epochs | gradients
  double amount = 0;
};

struct PipelineSpec {
  std::string name;
  std::string source;  // the config file, for messages
  std::uint64_t seed = 1;
  std::int64_t workers = 8;
  std::int64_t byzantine = 0;
  std::string engine = "sync";
  std::int64_t buffer = 1;  // async: arrivals aggregated together (1: apply each arrival)
  double timeout = 30.0;    // distributed: seconds a sync round waits; 4x this silence drops a peer
  bool distributed = false;  // set by `phalanx launch`, so reports tell real runs from simulated ones
  std::string authentication = "hmac";  // distributed: hmac (shared key, a MAC per message) | off
  std::string key_file;                 // distributed: the shared key (PHALANX_KEY_FILE wins)
  SpeedSpec speed;

  PluginChoice data, model, optimizer, aggregator, attack;
  std::vector<PluginChoice> preaggregators;
  std::string partition = "iid";      // iid | dirichlet | shards
  double dirichlet_alpha = 1.0;
  std::int64_t shards_per_worker = 2;  // shards: k shards (labels) per worker
  /// data.seed: seeds the data source, the partition and the batch orders apart from the run seed; unset,
  /// they derive from the run seed (data_seed() in engine/training_parts.hpp).
  std::optional<std::uint64_t> data_seed;
  std::int64_t train_limit = 0;  // data.limit.train: first N training samples only (0: all)
  std::int64_t test_limit = 0;   // data.limit.test

  double lr = 0.1;
  double weight_decay = 0.0;
  ScheduleSpec schedule;

  std::int64_t batch_size = 32;
  BudgetSpec budget;
  std::int64_t eval_every = 50;
  std::int64_t eval_batch_size = 1000;
  std::int64_t threads = 0;  // gradient threads; 0: one per core
  /// server_data.samples: size of the server's clean sample (0: no server gradient in the round context).
  std::int64_t server_samples = 0;

  std::vector<std::string> plugin_paths;
  /// compare: {aggregator.name: [mean, cm], ...}: the variants to run side by side.
  std::vector<std::pair<std::string, std::vector<Value>>> compare;

  /// The whole config with every default filled in, written as the run's config.yaml.
  Value resolved;

  std::int64_t honest() const { return workers - byzantine; }
};

/// Plugin search directories named by the config (plugins.paths), relative to the config file.
std::vector<std::string> config_plugin_paths(const Value& root);

/// Validates `root` and resolves defaults. Throws phalanx::Error with file:line.
PipelineSpec resolve_pipeline(const Value& root, const Registry& registry);

}  // namespace phalanx::core
