// Small deterministic pieces every engine shares: seeds, learning-rate schedules, data partitions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "phalanx/core/config/pipeline.hpp"

namespace phalanx::core {

/// A seed for one consumer ("worker/3/data", "aggregator") derived from the run seed, so adding a new
/// random consumer never shifts the draws of the others.
std::uint64_t derive_seed(std::uint64_t run_seed, const std::string& purpose);

/// A seed for a consumer of the data ("data", "partition", "worker/3/batches"): derived from data.seed
/// when the config sets it, else from the run seed exactly as derive_seed(spec.seed, purpose).
std::uint64_t data_seed(const PipelineSpec& spec, const std::string& purpose);

/// Learning rate at `step` (0-based) of `total` steps.
double learning_rate(const ScheduleSpec& schedule, double base_lr, std::int64_t step, std::int64_t total);

/// Splits sample indices 0..labels.size(0)-1 across `parts` workers: "iid" (shuffled, near-equal),
/// "dirichlet" (per class, proportions drawn from Dirichlet(alpha)) or "shards" (McMahan et al. 2017:
/// sorted by label, cut into parts * per_worker shards, per_worker shards each). Throws phalanx::Error if
/// a worker would get no sample.
std::vector<at::Tensor> partition_indices(const at::Tensor& labels, std::int64_t classes, std::int64_t parts,
                                          const std::string& method, double alpha, std::uint64_t seed,
                                          std::int64_t per_worker = 2);

/// The partition `spec` asks for (data.partition), seeded by data_seed(spec, "partition").
std::vector<at::Tensor> partition_of(const PipelineSpec& spec, const at::Tensor& labels, std::int64_t classes);

/// Number of steps the budget allows.
std::int64_t budget_steps(const BudgetSpec& budget, std::int64_t train_size, std::int64_t workers,
                          std::int64_t honest_workers, std::int64_t batch_size);

}  // namespace phalanx::core
