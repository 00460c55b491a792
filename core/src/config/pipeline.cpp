#include "phalanx/core/config/pipeline.hpp"

#include <filesystem>

#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

const std::vector<std::string> kTopLevelKeys{"name",      "seed",   "data",     "model",   "workers", "engine",
                                             "optimizer", "aggregator", "attack", "training", "plugins",
                                             "compare", "sweep", "seeds", "report", "server_data"};

std::string at(const Value& v) { return v.location().empty() ? "" : v.location() + ": "; }

ParamSpec spec(std::string name, ParamType type, Value def, std::string help, std::optional<double> min = {},
               std::optional<double> max = {}, std::vector<std::string> choices = {}) {
  return ParamSpec{std::move(name), type, std::move(def), std::move(help), min, max, std::move(choices)};
}

// A section of the config; a bare name stands for {name: NAME} ("attack: alie").
Value section(const Value& root, const std::string& key, bool required) {
  const Value* v = root.find(key);
  if (!v || v->is_null()) {
    if (required)
      throw Error(at(root) + "the config has no '" + key + "' section; add one (see configs/quickstart.yaml)");
    return Value::map({});
  }
  if (v->type() == Value::Type::String) {
    Value m = Value::map({{"name", *v}});
    m.set_location(v->location());
    return m;
  }
  if (v->type() != Value::Type::Map)
    throw Error(at(*v) + "'" + key + "' must be a section (a map) or a plugin name, got '" + v->to_string() + "'");
  return *v;
}

// A plugin section: {name: X, ...params}. `core_keys` belong to the core and are validated elsewhere.
PluginChoice choose(const Registry& registry, Kind kind, const Value& sec, const std::string& path,
                    const std::string& default_name, const std::vector<std::string>& core_keys) {
  PluginChoice c;
  c.path = path;
  const Value* name = sec.find("name");
  if (!name || name->is_null()) {
    if (default_name.empty())
      throw Error(at(sec) + path + ".name is missing: say which " + kind_name(kind) + " to use (`phalanx plugins " +
                  kind_name(kind) + "` lists them)");
    c.name = default_name;
  } else {
    if (name->type() != Value::Type::String)
      throw Error(at(*name) + path + ".name must be a plugin name, got '" + name->to_string() + "'");
    c.name = name->as_string();
  }
  try {
    registry.find(kind, c.name);
  } catch (const Error& e) {
    throw Error(at(name ? *name : sec) + path + ".name: " + e.what());
  }
  c.params = registry.validate(kind, c.name, sec, path, core_keys);
  return c;
}

Value resolved_section(const PluginChoice& c, const Value& core_part) {
  Value out = Value::map({{"name", Value(c.name)}});
  if (core_part.type() == Value::Type::Map)
    for (const auto& [k, v] : core_part.as_map()) out.set(k, v);
  for (const auto& [k, v] : c.params.values().as_map()) out.set(k, v);
  return out;
}

}  // namespace

std::vector<std::string> config_plugin_paths(const Value& root) {
  std::vector<std::string> out;
  const Value* plugins = root.find("plugins");
  if (!plugins || plugins->is_null()) return out;
  if (plugins->type() != Value::Type::Map) throw Error(at(*plugins) + "'plugins' must be a map with 'paths'");
  for (const auto& [k, v] : plugins->as_map()) {
    if (k != "paths") throw Error(at(v) + "plugins." + k + ": unknown key (only 'paths' is allowed)");
    const Value::List items = v.type() == Value::Type::List ? v.as_list() : Value::List{v};
    for (const auto& item : items) {
      if (item.type() != Value::Type::String) throw Error(at(item) + "plugins.paths entries must be folder names");
      std::filesystem::path p = item.as_string();
      // Relative paths are relative to the config file, so a config travels with its plugins.
      std::string loc = root.location();
      std::string file = loc.substr(0, loc.rfind(':'));
      if (p.is_relative() && !file.empty()) p = std::filesystem::path(file).parent_path() / p;
      std::error_code ec;
      if (!std::filesystem::is_directory(p, ec))
        throw Error(at(item) + "plugins.paths: '" + p.lexically_normal().string() +
                    "' is not a folder; fix the path (relative paths are relative to the config file)");
      out.push_back(p.lexically_normal().string());
    }
  }
  return out;
}

// server_data: {samples: N}: the server's own clean sample, whose gradient aggregators receive each round
// (RoundContext::server_gradient). Written to the resolved config only when given, so configs without it
// resolve exactly as before.
static void resolve_server_data(const Value& root, PipelineSpec& s, Value& resolved) {
  const Value* given = root.find("server_data");
  if (!given || given->is_null()) return;
  Params p = Params::validate({spec("samples", ParamType::Int, 0,
                                    "training samples the server draws from honest workers' data (with the run "
                                    "seed) to compute its own gradient every round; 0: none",
                                    0)},
                              *given, "server_data");
  s.server_samples = p.get_int("samples");
  if (s.server_samples > 0 && s.distributed)
    p.fail("samples", "is not supported in the distributed mode yet (the server holds no training data there); "
                      "remove server_data or run the sync or async simulation");
  resolved.set("server_data", p.values());
}

PipelineSpec resolve_pipeline(const Value& root, const Registry& registry) {
  if (root.type() != Value::Type::Map) throw Error(at(root) + "a pipeline config must be a map of sections");
  for (const auto& [key, value] : root.as_map()) {
    bool known = false;
    for (const auto& k : kTopLevelKeys) known = known || k == key;
    if (!known) {
      std::string near = nearest_name(key, kTopLevelKeys);
      std::string list;
      for (const auto& k : kTopLevelKeys) list += (list.empty() ? "" : ", ") + k;
      throw Error(at(value) + "unknown section '" + key + "'" + (near.empty() ? "" : "; did you mean '" + near + "'?") +
                  " (valid: " + list + ")");
    }
  }

  PipelineSpec s;
  std::string loc = root.location();
  s.source = loc.substr(0, loc.rfind(':'));
  Value resolved = Value::map({});

  const Value* name = root.find("name");
  s.name = name && name->type() == Value::Type::String ? name->as_string() : "run";
  if (name && name->type() != Value::Type::String) throw Error(at(*name) + "'name' must be a string");
  for (char ch : s.name)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-' || ch == '.'))
      throw Error(at(*name) + "'name' may hold letters, digits, '_', '-' and '.' only (it names folders)");
  resolved.set("name", Value(s.name));

  if (const Value* seed = root.find("seed")) {
    if (seed->type() != Value::Type::Int || seed->as_int() < 0)
      throw Error(at(*seed) + "'seed' must be a non-negative integer, got '" + seed->to_string() + "'");
    s.seed = static_cast<std::uint64_t>(seed->as_int());
  }
  resolved.set("seed", Value(static_cast<std::int64_t>(s.seed)));

  // workers
  Params workers = Params::validate(
      {spec("count", ParamType::Int, 8, "number of workers n, honest and Byzantine", 1, 100000),
       spec("byzantine", ParamType::Int, 0, "number of Byzantine workers b (the last b)", 0)},
      section(root, "workers", false), "workers");
  s.workers = workers.get_int("count");
  s.byzantine = workers.get_int("byzantine");
  if (s.byzantine >= s.workers)
    workers.fail("byzantine", std::to_string(s.byzantine) + " Byzantine of " + std::to_string(s.workers) +
                                  " workers leaves no honest worker; use at most " + std::to_string(s.workers - 1));
  resolved.set("workers", workers.values());

  const Value& engine_section = section(root, "engine", false);
  Params engine = Params::validate(
      {spec("name", ParamType::String, "sync", "sync: rounds of all workers; async: discrete-event simulation",
            {}, {}, {"sync", "async"}),
       spec("buffer", ParamType::Int, 1, "async: arrivals aggregated together before one update (1: none)", 1),
       spec("timeout", ParamType::Double, 30.0,
            "distributed (phalanx launch): seconds a synchronous round waits for missing messages; a worker "
            "or server silent for 4x this is given up", 0.01),
       spec("distributed", ParamType::Bool, false,
            "set by phalanx launch: the run used real processes (start such a config with phalanx launch)"),
       spec("authentication", ParamType::String, "hmac",
            "distributed: hmac (every process proves it holds the shared key; every message carries a MAC) or "
            "off (a trusted, closed cluster only)", {}, {}, {"hmac", "off"}),
       spec("key_file", ParamType::String, "",
            "distributed: file holding the shared key (PHALANX_KEY_FILE, when set, wins); phalanx launch -n "
            "makes its own")},
      engine_section, "engine", {"speed"});
  s.engine = engine.get_string("name");
  s.buffer = engine.get_int("buffer");
  s.timeout = engine.get_double("timeout");
  s.distributed = engine.get_bool("distributed");
  s.authentication = engine.get_string("authentication");
  s.key_file = engine.get_string("key_file");
  if (s.buffer > s.workers) engine.fail("buffer", "cannot exceed the number of workers (" + std::to_string(s.workers) + ")");
  Value speed_section = Value::map({});
  if (const Value* sp = engine_section.find("speed"))
    speed_section = sp->type() == Value::Type::String ? Value::map({{"name", *sp}}) : *sp;
  Params speed = Params::validate(
      {spec("name", ParamType::String, "homogeneous", "worker speed model", {}, {},
            {"homogeneous", "heterogeneous", "gamma", "trace"}),
       spec("time", ParamType::Double, 1.0, "mean compute time of the fastest worker", 1e-9),
       spec("spread", ParamType::Double, 0.0, "worker k takes time * (1 + k * spread)", 0.0),
       spec("slow_fraction", ParamType::Double, 0.0, "fraction of workers (the first ones) that are slow", 0.0, 1.0),
       spec("slow_factor", ParamType::Double, 1.0, "how many times slower the slow workers are", 1.0),
       spec("shape", ParamType::Double, 100.0, "gamma: shape of the per-step Gamma(shape, 1/shape) factor", 1e-6),
       spec("file", ParamType::String, "", "trace: file whose line k lists worker k's compute times")},
      speed_section, "engine.speed");
  s.speed = {speed.get_string("name"),          speed.get_double("time"),  speed.get_double("spread"),
             speed.get_double("slow_fraction"), speed.get_double("slow_factor"), speed.get_double("shape"),
             speed.get_string("file")};
  if (s.speed.name == "trace" && s.speed.file.empty())
    speed.fail("file", "the trace speed model needs a file (line k: worker k's compute times)");
  if (s.speed.name == "trace") {
    std::filesystem::path f = s.speed.file;
    if (f.is_relative() && !s.source.empty()) f = std::filesystem::path(s.source).parent_path() / f;
    s.speed.file = f.lexically_normal().string();
  }
  Value engine_resolved = engine.values();
  engine_resolved.set("speed", speed.values());
  resolved.set("engine", engine_resolved);

  // data (+ partition)
  const Value& data = section(root, "data", true);
  s.data = choose(registry, Kind::Data, data, "data", "", {"partition"});
  Value partition_section = Value::map({});
  if (const Value* part = data.find("partition")) {
    if (part->type() == Value::Type::String) {
      partition_section.set("name", *part);
    } else {
      partition_section = *part;
    }
  }
  Params partition = Params::validate(
      {spec("name", ParamType::String, "iid", "how the training set is split across workers", {}, {},
            {"iid", "dirichlet"}),
       spec("alpha", ParamType::Double, 1.0, "Dirichlet concentration (smaller = more skewed labels)", 1e-6)},
      partition_section, "data.partition");
  s.partition = partition.get_string("name");
  s.dirichlet_alpha = partition.get_double("alpha");
  Value data_core = Value::map({{"partition", partition.values()}});
  resolved.set("data", resolved_section(s.data, data_core));

  const Value& model = section(root, "model", true);
  s.model = choose(registry, Kind::Model, model, "model", "", {});
  resolved.set("model", resolved_section(s.model, Value()));

  // optimizer (+ lr, schedule, weight decay: the core applies them to every optimizer alike)
  const Value& opt = section(root, "optimizer", false);
  s.optimizer = choose(registry, Kind::Optimizer, opt, "optimizer", "sgd", {"lr", "weight_decay", "schedule"});
  Value opt_core_given = Value::map({});
  for (const char* k : {"lr", "weight_decay"})
    if (const Value* v = opt.find(k)) opt_core_given.set(k, *v);
  Params opt_core = Params::validate(
      {spec("lr", ParamType::Double, 0.1, "base learning rate", 0.0),
       spec("weight_decay", ParamType::Double, 0.0, "L2 penalty added to every gradient", 0.0)},
      opt_core_given, "optimizer");
  s.lr = opt_core.get_double("lr");
  s.weight_decay = opt_core.get_double("weight_decay");
  Value schedule_section = Value::map({});
  if (const Value* sch = opt.find("schedule"))
    schedule_section = sch->type() == Value::Type::String ? Value::map({{"name", *sch}}) : *sch;
  Params schedule = Params::validate(
      {spec("name", ParamType::String, "constant", "learning-rate schedule", {}, {}, {"constant", "cosine", "step"}),
       spec("warmup_steps", ParamType::Int, 0, "linear warm-up steps before the schedule", 0),
       spec("gamma", ParamType::Double, 0.1, "step: factor applied at each decay", 0.0, 1.0),
       spec("every", ParamType::Int, 0, "step: decay every this many steps (0: a third of the run)", 0),
       spec("min_lr", ParamType::Double, 0.0, "cosine: final learning rate", 0.0)},
      schedule_section, "optimizer.schedule");
  s.schedule.name = schedule.get_string("name");
  s.schedule.warmup_steps = schedule.get_int("warmup_steps");
  s.schedule.step_gamma = schedule.get_double("gamma");
  s.schedule.step_every = schedule.get_int("every");
  s.schedule.min_lr = schedule.get_double("min_lr");
  Value opt_core_resolved = opt_core.values();
  opt_core_resolved.set("schedule", schedule.values());
  resolved.set("optimizer", resolved_section(s.optimizer, opt_core_resolved));

  // aggregator (+ pre-aggregators)
  const Value& agg = section(root, "aggregator", false);
  s.aggregator = choose(registry, Kind::Aggregator, agg, "aggregator", "mean", {"pre"});
  Value::List pre_resolved;
  if (const Value* pre = agg.find("pre")) {
    if (!pre->is_null()) {
      const Value::List items = pre->type() == Value::Type::List ? pre->as_list() : Value::List{*pre};
      for (std::size_t i = 0; i < items.size(); ++i) {
        Value item = items[i];
        if (item.type() == Value::Type::String) {
          Value m = Value::map({{"name", item}});
          m.set_location(item.location());
          item = m;
        }
        std::string path = "aggregator.pre[" + std::to_string(i) + "]";
        if (item.type() != Value::Type::Map)
          throw Error(at(items[i]) + path + " must be a pre-aggregator name or {name: ..., params}");
        s.preaggregators.push_back(choose(registry, Kind::PreAggregator, item, path, "", {}));
        pre_resolved.push_back(resolved_section(s.preaggregators.back(), Value()));
      }
    }
  }
  resolved.set("aggregator", resolved_section(s.aggregator, Value::map({{"pre", Value::list(pre_resolved)}})));

  const Value& attack = section(root, "attack", false);
  s.attack = choose(registry, Kind::Attack, attack, "attack", "none", {});
  resolved.set("attack", resolved_section(s.attack, Value()));

  // training
  const Value& training = section(root, "training", false);
  Params train = Params::validate(
      {spec("batch_size", ParamType::Int, 32, "samples per worker per step", 1),
       spec("eval_every", ParamType::Int, 50, "steps between evaluations on the test set", 1),
       spec("eval_batch_size", ParamType::Int, 1000, "batch size for evaluation", 1),
       spec("threads", ParamType::Int, 0,
            "threads computing the workers' gradients side by side (0: one per core); results do not depend on it",
            0, 256)},
      training, "training", {"budget"});
  s.batch_size = train.get_int("batch_size");
  s.eval_every = train.get_int("eval_every");
  s.eval_batch_size = train.get_int("eval_batch_size");
  s.threads = train.get_int("threads");
  Value budget_resolved = Value::map({});
  const Value* budget = training.find("budget");
  if (!budget || budget->is_null()) {
    s.budget = {"steps", 100};
  } else {
    if (budget->type() != Value::Type::Map || budget->as_map().size() != 1)
      throw Error(at(*budget) + "training.budget must hold exactly one of steps, epochs or gradients, "
                                "e.g. {epochs: 2}");
    const auto& [unit, amount] = budget->as_map().front();
    if (unit != "steps" && unit != "epochs" && unit != "gradients")
      throw Error(at(amount) + "training.budget." + unit + ": unknown unit; use steps, epochs or gradients");
    if (!amount.is_number() || !(amount.as_double() > 0))
      throw Error(at(amount) + "training.budget." + unit + " must be a positive number, got '" + amount.to_string() +
                  "'");
    s.budget = {unit, amount.as_double()};
  }
  budget_resolved.set(s.budget.unit, Value(s.budget.amount));
  Value train_resolved = train.values();
  train_resolved.set("budget", budget_resolved);
  resolved.set("training", train_resolved);

  resolve_server_data(root, s, resolved);

  s.plugin_paths = config_plugin_paths(root);
  if (const Value* plugins = root.find("plugins")) resolved.set("plugins", *plugins);

  if (const Value* compare = root.find("compare")) {
    if (compare->type() != Value::Type::Map)
      throw Error(at(*compare) + "'compare' must map config keys to lists of values, e.g. {aggregator.name: [mean, cm]}");
    for (const auto& [key, values] : compare->as_map()) {
      if (values.type() != Value::Type::List || values.as_list().empty())
        throw Error(at(values) + "compare." + key + " must be a non-empty list of values");
      if (key.rfind("compare", 0) == 0) throw Error(at(values) + "compare cannot vary itself");
      s.compare.emplace_back(key, values.as_list());
    }
    resolved.set("compare", *compare);
  }
  s.resolved = std::move(resolved);
  return s;
}

}  // namespace phalanx::core
