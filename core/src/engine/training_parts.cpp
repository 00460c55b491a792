#include "phalanx/core/engine/training_parts.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include <ATen/ATen.h>

#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {
std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// McMahan et al. 2017's pathological non-iid split. The samples, sorted by label (labels in a seeded
// order, samples shuffled within each), are cut into parts * per_worker contiguous shards of near-equal
// size; worker who[w] takes shards w, w + parts, w + 2 parts, ... Two shards `parts` apart lie n /
// per_worker samples apart, more than one label holds when the classes are balanced and per_worker <=
// classes, so each worker's shards come from different labels: exactly per_worker labels each when
// parts * per_worker is also a multiple of the number of classes (no shard straddles two labels).
void split_into_shards(const at::Tensor& labels, std::int64_t classes, std::int64_t parts, std::int64_t per_worker,
                       std::mt19937_64& rng, std::vector<std::vector<std::int64_t>>& buckets) {
  const std::int64_t n = labels.size(0);
  const std::int64_t shards = parts * per_worker;
  if (per_worker > classes)
    throw Error("data.partition.per_worker = " + std::to_string(per_worker) + " exceeds the " +
                std::to_string(classes) + " classes of the data; use at most " + std::to_string(classes));
  if (n < shards)
    throw Error("data.partition: shards needs at least workers * per_worker = " + std::to_string(shards) +
                " training samples, the training set has " + std::to_string(n) +
                "; lower data.partition.per_worker or use fewer workers");
  auto label_of = labels.accessor<std::int64_t, 1>();
  std::vector<std::vector<std::int64_t>> by_class(classes);
  for (std::int64_t i = 0; i < n; ++i) by_class[label_of[i]].push_back(i);
  std::vector<std::int64_t> label_order(classes), who(parts);
  for (std::int64_t c = 0; c < classes; ++c) label_order[c] = c;
  for (std::int64_t w = 0; w < parts; ++w) who[w] = w;
  std::shuffle(label_order.begin(), label_order.end(), rng);
  std::shuffle(who.begin(), who.end(), rng);
  std::vector<std::int64_t> sorted;
  sorted.reserve(n);
  for (std::int64_t c : label_order) {
    std::shuffle(by_class[c].begin(), by_class[c].end(), rng);
    sorted.insert(sorted.end(), by_class[c].begin(), by_class[c].end());
  }
  for (std::int64_t j = 0; j < shards; ++j) {
    auto& bucket = buckets[who[j % parts]];
    bucket.insert(bucket.end(), sorted.begin() + j * n / shards, sorted.begin() + (j + 1) * n / shards);
  }
}

}  // namespace

std::uint64_t data_seed(const PipelineSpec& spec, const std::string& purpose) {
  return derive_seed(spec.data_seed ? *spec.data_seed : spec.seed, purpose);
}

std::vector<at::Tensor> partition_of(const PipelineSpec& spec, const at::Tensor& labels, std::int64_t classes) {
  return partition_indices(labels, classes, spec.workers, spec.partition, spec.dirichlet_alpha,
                           data_seed(spec, "partition"), spec.shards_per_worker);
}

std::uint64_t derive_seed(std::uint64_t run_seed, const std::string& purpose) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a of the purpose, mixed with the run seed
  for (unsigned char c : purpose) h = (h ^ c) * 1099511628211ULL;
  return splitmix64(splitmix64(run_seed) ^ h);
}

double learning_rate(const ScheduleSpec& s, double base, std::int64_t step, std::int64_t total) {
  if (s.warmup_steps > 0 && step < s.warmup_steps)
    return base * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  const std::int64_t after = step - s.warmup_steps;
  const std::int64_t span = std::max<std::int64_t>(1, total - s.warmup_steps);
  if (s.name == "cosine") {
    const double progress = std::min(1.0, static_cast<double>(after) / static_cast<double>(span));
    return s.min_lr + (base - s.min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  if (s.name == "step") {
    const std::int64_t every = s.step_every > 0 ? s.step_every : std::max<std::int64_t>(1, span / 3);
    return base * std::pow(s.step_gamma, static_cast<double>(after / every));
  }
  return base;
}

std::vector<at::Tensor> partition_indices(const at::Tensor& labels, std::int64_t classes, std::int64_t parts,
                                          const std::string& method, double alpha, std::uint64_t seed,
                                          std::int64_t per_worker) {
  const std::int64_t n = labels.size(0);
  if (n < parts)
    throw Error("the training set has " + std::to_string(n) + " samples, fewer than the " + std::to_string(parts) +
                " workers; use fewer workers or more data");
  std::mt19937_64 rng(seed);
  std::vector<std::vector<std::int64_t>> buckets(parts);
  if (method == "iid") {
    std::vector<std::int64_t> order(n);
    for (std::int64_t i = 0; i < n; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (std::int64_t i = 0; i < n; ++i) buckets[i % parts].push_back(order[i]);
  } else if (method == "dirichlet") {
    auto label_of = labels.accessor<std::int64_t, 1>();
    std::vector<std::vector<std::int64_t>> by_class(classes);
    for (std::int64_t i = 0; i < n; ++i) by_class[label_of[i]].push_back(i);
    std::gamma_distribution<double> gamma(alpha, 1.0);
    for (auto& members : by_class) {
      std::shuffle(members.begin(), members.end(), rng);
      std::vector<double> share(parts);
      double sum = 0;
      for (auto& p : share) sum += (p = gamma(rng));
      if (!(sum > 0)) {  // every draw underflowed (tiny alpha): give the class to one worker
        std::fill(share.begin(), share.end(), 0.0);
        share[rng() % parts] = sum = 1.0;
      }
      // Cumulative cut points; the last worker takes the rounding remainder.
      std::size_t start = 0;
      double cumulative = 0;
      for (std::int64_t w = 0; w < parts; ++w) {
        cumulative += share[w] / sum;
        std::size_t end = w + 1 == parts ? members.size()
                                         : std::min(members.size(), static_cast<std::size_t>(std::llround(
                                                                        cumulative * members.size())));
        for (std::size_t i = start; i < end; ++i) buckets[w].push_back(members[i]);
        start = std::max(start, end);
      }
    }
  } else if (method == "shards") {
    split_into_shards(labels, classes, parts, per_worker, rng, buckets);
  } else {
    throw Error("unknown partition '" + method + "' (use iid, dirichlet or shards)");
  }
  std::vector<at::Tensor> out;
  for (std::int64_t w = 0; w < parts; ++w) {
    if (buckets[w].empty())
      throw Error("data.partition: worker " + std::to_string(w) + " received no training sample (" + method +
                  (method == "dirichlet" ? " with alpha = " + std::to_string(alpha) : std::string()) +
                  "); raise data.partition.alpha or use fewer workers");
    std::sort(buckets[w].begin(), buckets[w].end());
    out.push_back(at::tensor(buckets[w], at::kLong));
  }
  return out;
}

std::int64_t budget_steps(const BudgetSpec& budget, std::int64_t train_size, std::int64_t workers,
                          std::int64_t honest_workers, std::int64_t batch_size) {
  // As in the ByzSGDnm paper: an epoch is train_size samples spread over all m workers (T = E N / (B m)),
  // and a gradient budget C counts honest per-sample gradients (T = C / (B m (1 - delta))).
  double steps = budget.amount;
  if (budget.unit == "epochs")
    steps = budget.amount * static_cast<double>(train_size) / static_cast<double>(workers * batch_size);
  if (budget.unit == "gradients") steps = budget.amount / static_cast<double>(honest_workers * batch_size);
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(steps - 1e-9)));
}

}  // namespace phalanx::core
