#include "phalanx/core/engine/preflight.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/engine/engine_parts.hpp"
#include "phalanx/core/run/memory_guard.hpp"
#include "phalanx/core/engine/training_parts.hpp"
#include "phalanx/core/engine/worker_pool.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

constexpr double kFloat = 4;  // bytes per float32 coordinate

std::int64_t read_number(const std::string& path) {
  std::ifstream in(path);
  std::int64_t value = -1;
  return in >> value ? value : -1;
}

// "mlp (hidden: [200])": a plugin and its parameters, for messages.
std::string plugin_text(const PluginChoice& c) {
  std::string params;
  const Value& values = c.params.values();
  if (values.type() == Value::Type::Map)
    for (const auto& [k, v] : values.as_map()) params += (params.empty() ? "" : ", ") + k + ": " + v.to_string();
  return "'" + c.name + "'" + (params.empty() ? "" : " (" + params + ")");
}

// The keys of a plugin section ("model.hidden"): what to change when the plugin itself is the large item.
std::string plugin_keys(const PluginChoice& c) {
  std::string keys;
  const Value& values = c.params.values();
  if (values.type() == Value::Type::Map)
    for (const auto& [k, v] : values.as_map())
      if (v.is_number() || v.type() == Value::Type::List) keys += (keys.empty() ? "" : ", ") + c.path + "." + k;
  return keys.empty() ? c.path + ".name" : keys;
}

std::string with_commas(std::int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

// A refusal by the guard, already worded; never mistaken for a plugin that refuses a zero input.
struct Refusal : Error {
  using Error::Error;
};

// Runs `f` under the guard; an allocation above the limit becomes an error saying which part of the run
// needed it and which keys to change.
template <class F>
auto measured(const PipelineSpec& spec, const MemoryLimit& limit, const std::string& what, const std::string& keys,
              F&& f) {
  try {
    return f();
  } catch (const MemoryCapExceeded& e) {
    throw Refusal(spec.source + ": " + what + ": " + e.what() + " (" + limit.source + "); change " + keys +
                ", or raise the limit with --max-memory");
  }
}

// Peak bytes of `pass` at two batch sizes, fitted as a + b * batch and evaluated at `batch`.
template <class Pass>
double linear_in_batch(MemoryGuard& guard, std::int64_t batch, Pass&& pass) {
  auto peak_at = [&](std::int64_t b) {
    const std::int64_t before = guard.live();
    guard.reset_peak();
    pass(b);
    return static_cast<double>(guard.peak() - before);
  };
  const std::int64_t small = 1, large = std::min<std::int64_t>(batch, 8);
  const double at_small = peak_at(small);
  if (large == small) return at_small;
  const double per_sample = std::max(0.0, (peak_at(large) - at_small) / static_cast<double>(large - small));
  return at_small + per_sample * static_cast<double>(batch - small);
}

double tensor_bytes(const at::Tensor& t) { return t.defined() ? static_cast<double>(t.nbytes()) : 0; }

struct Measurer {
  const PipelineSpec& spec;
  const Registry& registry;
  const MemoryLimit& limit;
  MemoryGuard& guard;
  MemoryEstimate estimate;

  void add(std::string what, std::string keys, double bytes, bool transient = false) {
    estimate.items.push_back({std::move(what), std::move(keys), bytes, transient});
  }

  void refuse_if_too_large() const {
    if (estimate.peak() <= static_cast<double>(limit.bytes)) return;
    throw Error(spec.source + ": run '" + spec.name + "' would not fit in memory.\n" + estimate.describe(limit) +
                "\nChange the keys named for the largest items, or raise the limit with --max-memory.");
  }

  // A worker's share of the training set must hold a batch: a larger batch would repeat samples within a
  // batch (and a typo such as batch_size: 100000000 would only show up as an allocation failure).
  void check_batch(const Dataset& data) const {
    const std::int64_t share = data.train_x.size(0) / spec.workers;
    if (spec.batch_size > share)
      throw Error(spec.source + ": training.batch_size = " + std::to_string(spec.batch_size) +
                  " is larger than a worker's share of the training set (" + std::to_string(data.train_x.size(0)) +
                  " samples / " + std::to_string(spec.workers) + " workers = " + std::to_string(share) +
                  "); use training.batch_size <= " + std::to_string(std::max<std::int64_t>(share, 1)) +
                  ", fewer workers or more data");
  }

  Dataset load(const std::string& data_what, const RunInfo& info) {
    return measured(spec, limit, "loading " + data_what, plugin_keys(spec.data),
                    [&] { return load_data(spec, registry, info, nullptr); });
  }

  void run() {
    RunInfo info = run_info(spec, "");
    const std::string data_what = "data " + plugin_text(spec.data);
    Dataset data = load(data_what, info);
    const std::int64_t n_train = data.train_x.size(0);
    add(data_what + ": " + with_commas(n_train) + " train + " + with_commas(data.test_x.size(0)) + " test samples",
        plugin_keys(spec.data),
        tensor_bytes(data.train_x) + tensor_bytes(data.train_y) + tensor_bytes(data.test_x) +
            tensor_bytes(data.test_y));
    // Each worker's index tensor and its shuffled order: two int64 per training sample in all.
    add("workers' batch streams (sample indices)", "data", 16.0 * static_cast<double>(n_train));
    partition_indices(data.train_y, data.classes, spec.workers, spec.partition, spec.dirichlet_alpha, 0,
                      spec.shards_per_worker);
    check_batch(data);

    const std::string model_what = "model " + plugin_text(spec.model);
    auto model = measured(spec, limit, "building " + model_what, plugin_keys(spec.model),
                          [&] { return build_model(spec, registry, info, data, nullptr); });
    const std::int64_t d = model->dimension();
    const double n = static_cast<double>(spec.workers), row = kFloat * static_cast<double>(d);
    add(model_what + ": d = " + with_commas(d) + " parameters", plugin_keys(spec.model), row);
    const bool async = spec.engine == "async";
    if (async) {
      add("in-flight gradients (one per worker: n x d = " + with_commas(spec.workers) + " x " + with_commas(d) + ")",
          "workers.count, " + plugin_keys(spec.model), n * row);
      add("arrival buffer (engine.buffer x d) and the last honest message", "engine.buffer",
          static_cast<double>(spec.buffer + 1) * row);
    } else {
      add("message matrix (n x d = " + with_commas(spec.workers) + " x " + with_commas(d) + " floats)",
          "workers.count, " + plugin_keys(spec.model), n * row);
    }
    refuse_if_too_large();  // before the plugins allocate their rows and state
    measure_plugins(info, *model, d, n_train);
    measure_passes(data, *model);
    refuse_if_too_large();
  }

  void measure_plugins(RunInfo info, FlatModel& model, std::int64_t d, std::int64_t n_train) {
    info.dimension = d;
    info.total_steps = budget_steps(spec.budget, n_train, spec.workers, spec.honest(), spec.batch_size);
    const double n = static_cast<double>(spec.workers);
    const std::string opt_keys = "workers.count, optimizer.name";
    std::int64_t before = guard.live();
    EnginePlugins plugins = measured(spec, limit, "creating the plugins", opt_keys,
                                     [&] { return make_plugins(spec, registry, info, nullptr); });
    const double created = static_cast<double>(guard.live() - before);
    try {
      measured(spec, limit, "optimizer '" + spec.optimizer.name + "' worker state", opt_keys, [&] {
        before = guard.live();
        plugins.worker_rules[0]->message(at::zeros({d}), 0);
        return 0;
      });
      // In a synchronous simulation an honest worker's momentum moves into its row of the message matrix
      // (counted with the matrix) after its first message: what stays is the Byzantine workers' and, for a
      // moment, one first message per gradient thread.
      const bool in_rows =
          spec.engine != "async" && dynamic_cast<MomentumWorkerRule*>(plugins.worker_rules[0].get()) != nullptr;
      const double holders =
          in_rows ? static_cast<double>(spec.byzantine + gradient_threads(spec.threads, spec.workers)) : n;
      add("optimizer '" + spec.optimizer.name + "' state on the workers (measured on one, times " +
              (in_rows ? std::string("the Byzantine workers and threads") : std::string("n")) + ")",
          opt_keys, created + holders * static_cast<double>(guard.live() - before));
      at::Tensor params = model.params().clone();
      before = guard.live();
      Arrival arrival;
      measured(spec, limit, "optimizer '" + spec.optimizer.name + "' server state", "optimizer.name", [&] {
        plugins.optimizer->apply(params, at::zeros({d}), arrival, 0.0);
        return 0;
      });
      add("optimizer '" + spec.optimizer.name + "' state on the server", "optimizer.name",
          static_cast<double>(guard.live() - before));
    } catch (const Refusal&) {
      throw;
    } catch (const std::exception&) {
      // A rule that refuses a zero message: count two d-vectors per worker, an upper bound for the built-in
      // rules of plugins/optimizers/ (a momentum, or a momentum and a previous gradient).
      add("optimizer '" + spec.optimizer.name + "' state (not measurable; 2 x n x d assumed)", opt_keys,
          2 * n * kFloat * static_cast<double>(d));
    }
    measure_aggregation(plugins, d);
  }

  void measure_aggregation(EnginePlugins& plugins, std::int64_t d) {
    const std::int64_t rows_n = spec.engine == "async" ? spec.buffer : spec.workers;
    const std::string keys = "aggregator.name, aggregator.pre, workers.count";
    at::Tensor rows =
        measured(spec, limit, "the aggregator's input rows", keys, [&] { return at::zeros({rows_n, d}); });
    const double matrix = kFloat * static_cast<double>(rows_n * d);
    try {
      const std::int64_t before = guard.live();
      guard.reset_peak();
      at::Tensor update = measured(spec, limit, "aggregating " + std::to_string(rows_n) + " rows", keys,
                                   [&] { return aggregate_rows(spec, plugins, rows); });
      const double peak = static_cast<double>(guard.peak() - before);
      update.reset();
      add("aggregation workspace of '" + spec.aggregator.name + "' and its pre-aggregators", keys, peak, true);
      add("aggregator state kept between steps", keys, static_cast<double>(guard.live() - before));
    } catch (const Refusal&) {
      throw;
    } catch (const std::exception&) {
      // An aggregator that refuses all-zero rows: a sorted copy and its int64 indices, an upper bound for
      // the coordinate-wise and distance-based rules of plugins/aggregators/.
      add("aggregation workspace (not measurable; 3 copies of the rows assumed)", keys, 3 * matrix, true);
    }
    if (spec.byzantine > 0) measure_attack(plugins, rows);
  }

  void measure_attack(EnginePlugins& plugins, const at::Tensor& rows) {
    const std::int64_t h = std::min(spec.honest(), rows.size(0) - 1), b = rows.size(0) - h;
    const std::string keys = "attack.name, workers.byzantine";
    try {
      const std::int64_t before = guard.live();
      guard.reset_peak();
      measured(spec, limit, "attack '" + spec.attack.name + "'", keys, [&] {
        AttackRound round{rows.narrow(0, 0, h), rows.narrow(0, h, b).clone(), 0};
        return plugins.attack->craft(round);
      });
      add("attack '" + spec.attack.name + "' workspace", keys, static_cast<double>(guard.peak() - before), true);
    } catch (const Refusal&) {
      throw;
    } catch (const std::exception&) {
      add("attack workspace (not measurable; 2 copies of the Byzantine rows assumed)", keys,
          2 * kFloat * static_cast<double>(b * rows.size(1)), true);
    }
  }

  at::Tensor zeros_batch(std::int64_t b, const std::vector<std::int64_t>& sample_shape) const {
    std::vector<std::int64_t> shape{b};
    shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
    return at::zeros(shape);
  }

  void measure_passes(const Dataset& data, FlatModel& model) {
    const std::string train_keys = "training.batch_size, " + plugin_keys(spec.model);
    const double train = measured(spec, limit, "one worker's forward and backward pass", train_keys, [&] {
      return linear_in_batch(guard, spec.batch_size, [&](std::int64_t b) {
        model.loss_and_gradient(zeros_batch(b, data.sample_shape), at::zeros({b}, at::kLong));
      });
    });
    add("one worker's batch of " + std::to_string(spec.batch_size) + ": activations and gradient", train_keys, train,
        true);
    const std::int64_t eval_batch = std::max<std::int64_t>(1, std::min(spec.eval_batch_size, data.test_x.size(0)));
    const std::string eval_keys = "training.eval_batch_size, " + plugin_keys(spec.model);
    const double eval = measured(spec, limit, "an evaluation pass", eval_keys, [&] {
      return linear_in_batch(guard, eval_batch, [&](std::int64_t b) {
        model.score_batch(zeros_batch(b, data.sample_shape), at::zeros({b}, at::kLong));
      });
    });
    add("evaluation batch of " + std::to_string(eval_batch) + " (forward only)", eval_keys, eval, true);
  }
};

}  // namespace

std::int64_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::int64_t available = -1;
  for (std::string key; meminfo >> key;) {
    std::int64_t kib = 0;
    meminfo >> kib;
    if (key == "MemAvailable:") available = kib * 1024;
    meminfo.ignore(1 << 10, '\n');
  }
  // A container's own limit (cgroup v2, then v1) can be far below what the machine has free.
  const std::int64_t max2 = read_number("/sys/fs/cgroup/memory.max");
  const std::int64_t used2 = read_number("/sys/fs/cgroup/memory.current");
  if (max2 > 0 && used2 >= 0) available = std::min(available < 0 ? INT64_MAX : available, max2 - used2);
  const std::int64_t max1 = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  const std::int64_t used1 = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes");
  if (max1 > 0 && max1 < (std::int64_t{1} << 60) && used1 >= 0)
    available = std::min(available < 0 ? INT64_MAX : available, max1 - used1);
  return available > 0 ? available : (std::int64_t{1} << 62);
}

MemoryLimit memory_limit(const std::string& flag) {
  if (flag.empty()) {
    const std::int64_t bytes = available_memory();
    return {bytes, "this machine has " + format_bytes(static_cast<double>(bytes)) + " available"};
  }
  std::istringstream in(flag);
  double number = 0;
  std::string unit;
  if (!(in >> number) || !(number > 0) || !std::isfinite(number))
    throw Error("--max-memory expects a size such as 512M, 8G or 1.5GiB, got '" + flag + "'");
  in >> unit;
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::toupper(c); });
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  const std::string units = "KMGT";
  double scale = 1;
  if (unit.size() == 1 && units.find(unit[0]) != std::string::npos)
    scale = std::pow(1024.0, static_cast<double>(units.find(unit[0]) + 1));
  else if (!unit.empty() && unit != "B")
    throw Error("--max-memory: unknown unit in '" + flag + "'; use K, M, G or T (powers of 1024)");
  const double bytes = number * scale;
  if (bytes > 9e18) throw Error("--max-memory: '" + flag + "' is too large");
  return {static_cast<std::int64_t>(bytes), "--max-memory " + flag};
}

double MemoryEstimate::peak() const {
  double persistent = 0, transient = 0;
  for (const auto& item : items) {
    if (item.transient) transient = std::max(transient, item.bytes);
    else persistent += item.bytes;
  }
  return persistent + transient;
}

std::string MemoryEstimate::describe(const MemoryLimit& limit) const {
  std::vector<MemoryItem> sorted = items;
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
  std::string out = "memory: about " + format_bytes(peak()) + " at the peak (" + limit.source + ")";
  for (const auto& item : sorted) {
    char size[16];
    std::snprintf(size, sizeof size, "%10s", format_bytes(item.bytes).c_str());
    out += "\n  " + std::string(size) + "  " + item.what + (item.transient ? " [one phase at a time]" : "") +
           " <- " + item.keys;
  }
  return out;
}

std::int64_t resident_memory() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

std::int64_t peak_resident_memory() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

MemoryEstimate preflight(const PipelineSpec& spec, const Registry& registry, const MemoryLimit& limit) {
  MemoryGuard guard(limit.bytes);
  Measurer m{spec, registry, limit, guard, {}};
  m.run();
  return std::move(m.estimate);
}

}  // namespace phalanx::core
