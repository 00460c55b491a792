#include "phalanx/core/config/core_params.hpp"

#include <ostream>

#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

ParamSpec spec(std::string name, ParamType type, Value def, std::string help, std::optional<double> min = {},
               std::optional<double> max = {}, std::vector<std::string> choices = {}) {
  return ParamSpec{std::move(name), type, std::move(def), std::move(help), min, max, std::move(choices)};
}

std::vector<CoreSection> declare_sections() {
  using T = ParamType;
  return {
      {"", "top-level keys",
       {spec("name", T::String, "run", "names the run and its output folder (letters, digits, '_', '-', '.')"),
        spec("seed", T::Int, 1, "run seed: every random draw of the run derives from it", 0)}},
      {"workers", "who takes part",
       {spec("count", T::Int, 8, "number of workers n, honest and Byzantine", 1, 100000),
        spec("byzantine", T::Int, 0, "number of Byzantine workers b (the last b)", 0)}},
      {"engine", "how the run is executed",
       {spec("name", T::String, "sync", "sync: rounds of all workers; async: discrete-event simulation", {}, {},
             {"sync", "async"}),
        spec("buffer", T::Int, 1, "async: arrivals aggregated together before one update (1: none)", 1),
        spec("timeout", T::Double, 30.0,
             "distributed (phalanx launch): seconds a synchronous round waits for missing messages; a worker "
             "or server silent for 4x this is given up",
             0.01),
        spec("distributed", T::Bool, false,
             "set by phalanx launch: the run used real processes (start such a config with phalanx launch)"),
        spec("authentication", T::String, "hmac",
             "distributed: hmac (every process proves it holds the shared key; every message carries a MAC) or "
             "off (a trusted, closed cluster only)",
             {}, {}, {"hmac", "off"}),
        spec("key_file", T::String, "",
             "distributed: file holding the shared key (PHALANX_KEY_FILE, when set, wins); phalanx launch -n "
             "makes its own")}},
      {"engine.speed", "simulated compute time of the workers (a bare name stands for {name: NAME})",
       {spec("name", T::String, "homogeneous", "worker speed model", {}, {},
             {"homogeneous", "heterogeneous", "gamma", "trace"}),
        spec("time", T::Double, 1.0, "mean compute time of the fastest worker", 1e-9),
        spec("spread", T::Double, 0.0, "worker k takes time * (1 + k * spread)", 0.0),
        spec("slow_fraction", T::Double, 0.0, "fraction of workers (the first ones) that are slow", 0.0, 1.0),
        spec("slow_factor", T::Double, 1.0, "how many times slower the slow workers are", 1.0),
        spec("shape", T::Double, 100.0, "gamma: shape of the per-step Gamma(shape, 1/shape) factor", 1e-6),
        spec("file", T::String, "", "trace: file whose line k lists worker k's compute times"),
        spec("comm", T::Double, 0.0,
             "communication time of one gradient's round trip (push the gradient, pull the parameters), added "
             "to every compute time; a synchronous round pays it once, after its slowest worker",
             0.0)}},
      {"data", "core keys of the data section, beside the data plugin's own (`phalanx plugins data`)",
       {spec("seed", T::Int, Value(),
             "seed of the data (synthetic sets), the partition and each worker's batch order, apart from the run "
             "seed; auto: derived from the run seed",
             0)}},
      {"data.partition", "how the training set is split across workers (a bare name stands for {name: NAME})",
       {spec("name", T::String, "iid",
             "iid: shuffled, equal shares; dirichlet: per class, shares drawn from Dirichlet(alpha); shards: "
             "sorted by label and cut into n * per_worker shards, each worker gets per_worker of them "
             "(McMahan et al. 2017)",
             {}, {}, {"iid", "dirichlet", "shards"}),
        spec("alpha", T::Double, 1.0, "dirichlet: concentration (smaller = more skewed labels)", 1e-6),
        spec("per_worker", T::Int, 2,
             "shards: shards per worker k; each worker sees k labels when the classes are balanced and n * k "
             "is a multiple of the number of classes",
             1, 1000)}},
      {"data.limit", "use only the first samples of any data source (0: all)",
       {spec("train", T::Int, 0, "use only the first N training samples (0: all)", 0),
        spec("test", T::Int, 0, "use only the first N test samples (0: all)", 0)}},
      {"optimizer", "core keys of the optimizer section, applied to every optimizer alike",
       {spec("lr", T::Double, 0.1, "base learning rate", 0.0),
        spec("weight_decay", T::Double, 0.0, "L2 penalty added to every gradient", 0.0)}},
      {"optimizer.schedule", "learning-rate schedule (a bare name stands for {name: NAME})",
       {spec("name", T::String, "constant", "learning-rate schedule", {}, {}, {"constant", "cosine", "step"}),
        spec("warmup_steps", T::Int, 0, "linear warm-up steps before the schedule", 0),
        spec("gamma", T::Double, 0.1, "step: factor applied at each decay", 0.0, 1.0),
        spec("every", T::Int, 0, "step: decay every this many steps (0: a third of the run)", 0),
        spec("min_lr", T::Double, 0.0, "cosine: final learning rate", 0.0)}},
      {"training", "batches, evaluation and threads",
       {spec("batch_size", T::Int, 32, "samples per worker per step", 1),
        spec("eval_every", T::Int, 50, "steps between evaluations on the test set", 1),
        spec("eval_batch_size", T::Int, 1000, "batch size for evaluation", 1),
        spec("threads", T::Int, 0,
             "threads computing the workers' gradients side by side (0: one per core); results do not depend on it",
             0, 256)}},
      {"training.budget", "how long the run lasts: exactly one of these (default: steps 100)",
       {spec("steps", T::Double, Value(), "server updates (a positive number)"),
        spec("epochs", T::Double, Value(), "passes over the training set, spread over all workers (positive)"),
        spec("gradients", T::Double, Value(), "honest per-sample gradients computed (positive)")}},
      {"server_data", "the server's own clean sample (its gradient reaches aggregators each round)",
       {spec("samples", T::Int, 0,
             "training samples the server draws from honest workers' data (with the run seed) to compute its own "
             "gradient every round; 0: none",
             0)}},
  };
}

}  // namespace

const std::vector<CoreSection>& core_param_specs() {
  static const std::vector<CoreSection> sections = declare_sections();
  return sections;
}

const ParamSpec* core_param(const std::string& section, const std::string& name) {
  for (const auto& s : core_param_specs())
    if (s.path == section)
      for (const auto& p : s.params)
        if (p.name == name) return &p;
  return nullptr;
}

bool is_core_section(const std::string& path) {
  for (const auto& s : core_param_specs())
    if (s.path == path) return true;
  return false;
}

const std::vector<ParamSpec>& core_specs(const std::string& path) {
  for (const auto& s : core_param_specs())
    if (s.path == path) return s.params;
  throw Error("internal: '" + path + "' is not a core config section");
}

std::string describe_param(const ParamSpec& p) {
  std::string out = p.name + " (" + param_type_name(p.type) + ", default " +
                    (p.default_value.is_null() ? std::string("auto") : p.default_value.to_string()) + ")";
  if (p.min || p.max)
    out += " in [" + (p.min ? Value(*p.min).to_string() : std::string("-inf")) + ", " +
           (p.max ? Value(*p.max).to_string() : std::string("inf")) + "]";
  if (!p.choices.empty()) {
    out += " one of";
    for (const auto& c : p.choices) out += " " + c;
  }
  return out + ": " + p.help;
}

int print_core_params(std::ostream& out) {
  out << "core:\n";
  for (const auto& s : core_param_specs()) {
    out << "  " << (s.path.empty() ? "(top level)" : s.path) << "  -  " << s.summary << "\n";
    for (const auto& p : s.params) out << "      " << describe_param(p) << "\n";
  }
  return 0;
}

}  // namespace phalanx::core
