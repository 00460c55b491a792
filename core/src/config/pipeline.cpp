#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/config/outline.hpp"

#include <filesystem>

#include "phalanx/core/config/core_params.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

const std::vector<std::string> kTopLevelKeys{"name",      "seed",   "data",     "model",   "workers", "engine",
                                             "optimizer", "aggregator", "attack", "training", "plugins",
                                             "compare", "sweep", "seeds", "report", "server_data"};

std::string at(const Value& v) { return v.location().empty() ? "" : v.location() + ": "; }

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
  const PluginEntry* entry = nullptr;
  try {
    entry = &registry.find(kind, c.name);
  } catch (const Error& e) {
    throw Error(at(name ? *name : sec) + path + ".name: " + e.what());
  }
  std::vector<std::string> ignored = core_keys;
  ignored.push_back("name");
  c.params = Params::validate(entry->info.params, sec, path, ignored);
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


namespace {

// A core subsection such as engine.speed: a map, or a bare name standing for {name: NAME}.
Value subsection(const Value& parent, const std::string& key) {
  const Value* v = parent.find(key);
  if (!v || v->is_null()) return Value::map({});
  if (v->type() != Value::Type::String) return *v;
  Value m = Value::map({{"name", *v}});
  m.set_location(v->location());
  return m;
}

// Only the keys of `section` named in `keys`: the core's part of a section shared with a plugin.
Value only_keys(const Value& section, const std::vector<ParamSpec>& keys) {
  Value out = Value::map({});
  out.set_location(section.location());
  for (const auto& k : keys)
    if (const Value* v = section.find(k.name)) out.set(k.name, *v);
  return out;
}

std::vector<std::string> names_of(const std::vector<ParamSpec>& specs) {
  std::vector<std::string> out;
  for (const auto& s : specs) out.push_back(s.name);
  return out;
}

void check_top_level_keys(const Value& root) {
  if (root.type() != Value::Type::Map) throw Error(at(root) + "a pipeline config must be a map of sections");
  for (const auto& [key, value] : root.as_map()) {
    bool known = false;
    for (const auto& k : kTopLevelKeys) known = known || k == key;
    if (known) continue;
    std::string near = nearest_name(key, kTopLevelKeys);
    std::string list;
    for (const auto& k : kTopLevelKeys) list += (list.empty() ? "" : ", ") + k;
    throw Error(at(value) + "unknown section '" + key + "'" + (near.empty() ? "" : "; did you mean '" + near + "'?") +
                " (valid: " + list + ")");
  }
}

// name and seed stand at the top level beside the sections, so they are checked one by one (their
// declarations in core_params.cpp give the defaults and help).
void resolve_top_level(const Value& root, PipelineSpec& s, Value& resolved) {
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
}

void resolve_workers(const Value& root, PipelineSpec& s, Value& resolved) {
  Params workers = Params::validate(core_specs("workers"), section(root, "workers", false), "workers");
  s.workers = workers.get_int("count");
  s.byzantine = workers.get_int("byzantine");
  if (s.byzantine >= s.workers)
    workers.fail("byzantine", std::to_string(s.byzantine) + " Byzantine of " + std::to_string(s.workers) +
                                  " workers leaves no honest worker; use at most " + std::to_string(s.workers - 1));
  resolved.set("workers", workers.values());
}

Value resolve_speed(const Value& engine_section, PipelineSpec& s) {
  Params speed = Params::validate(core_specs("engine.speed"), subsection(engine_section, "speed"), "engine.speed");
  s.speed = {speed.get_string("name"),          speed.get_double("time"),        speed.get_double("spread"),
             speed.get_double("slow_fraction"), speed.get_double("slow_factor"), speed.get_double("shape"),
             speed.get_string("file"),          speed.get_double("comm")};
  if (s.speed.name == "trace" && s.speed.file.empty())
    speed.fail("file", "the trace speed model needs a file (line k: worker k's compute times)");
  if (s.speed.name == "trace") {
    std::filesystem::path f = s.speed.file;
    if (f.is_relative() && !s.source.empty()) f = std::filesystem::path(s.source).parent_path() / f;
    s.speed.file = f.lexically_normal().string();
  }
  return speed.values();
}

void resolve_engine(const Value& root, PipelineSpec& s, Value& resolved) {
  const Value& engine_section = section(root, "engine", false);
  Params engine = Params::validate(core_specs("engine"), engine_section, "engine", {"speed"});
  s.engine = engine.get_string("name");
  s.buffer = engine.get_int("buffer");
  s.timeout = engine.get_double("timeout");
  s.distributed = engine.get_bool("distributed");
  s.authentication = engine.get_string("authentication");
  s.key_file = engine.get_string("key_file");
  if (s.buffer > s.workers)
    engine.fail("buffer", "cannot exceed the number of workers (" + std::to_string(s.workers) + ")");
  Value engine_resolved = engine.values();
  engine_resolved.set("speed", resolve_speed(engine_section, s));
  resolved.set("engine", engine_resolved);
}

// Keys that data plugins used to declare and that the core now owns for every source.
void refuse_moved_data_keys(const Value& data) {
  for (const auto& [old_key, new_key] : {std::pair<const char*, const char*>{"train_limit", "train"},
                                         std::pair<const char*, const char*>{"test_limit", "test"}})
    if (const Value* v = data.find(old_key))
      throw Error(at(*v) + "data." + old_key + " has moved: the core limits every data source alike; write " +
                  "`limit: {" + new_key + ": " + v->to_string() + "}` in the data section (data.limit." + new_key +
                  ")");
}

// data: the plugin's own parameters plus the core's seed, partition and limit.
void resolve_data(const Value& root, const Registry& registry, PipelineSpec& s, Value& resolved) {
  const Value& data = section(root, "data", true);
  refuse_moved_data_keys(data);
  const std::vector<ParamSpec>& core_keys = core_specs("data");
  std::vector<std::string> core_names = names_of(core_keys);
  core_names.insert(core_names.end(), {"partition", "limit"});
  s.data = choose(registry, Kind::Data, data, "data", "", core_names);

  Params data_core = Params::validate(core_keys, only_keys(data, core_keys), "data");
  if (data_core.has("seed")) s.data_seed = static_cast<std::uint64_t>(data_core.get_int("seed"));

  Params partition = Params::validate(core_specs("data.partition"), subsection(data, "partition"), "data.partition");
  s.partition = partition.get_string("name");
  s.dirichlet_alpha = partition.get_double("alpha");
  s.shards_per_worker = partition.get_int("per_worker");

  Value limit_section = subsection(data, "limit");
  Params limit = Params::validate(core_specs("data.limit"), limit_section, "data.limit");
  s.train_limit = limit.get_int("train");
  s.test_limit = limit.get_int("test");

  // Written back only when given, so configs without them resolve exactly as before.
  Value data_resolved = Value::map({{"partition", partition.values()}});
  if (s.data_seed) data_resolved.set("seed", Value(static_cast<std::int64_t>(*s.data_seed)));
  if (data.find("limit")) data_resolved.set("limit", limit.values());
  resolved.set("data", resolved_section(s.data, data_resolved));
}

void resolve_model(const Value& root, const Registry& registry, PipelineSpec& s, Value& resolved) {
  s.model = choose(registry, Kind::Model, section(root, "model", true), "model", "", {});
  resolved.set("model", resolved_section(s.model, Value()));
}

Value resolve_schedule(const Value& opt, PipelineSpec& s) {
  Params schedule =
      Params::validate(core_specs("optimizer.schedule"), subsection(opt, "schedule"), "optimizer.schedule");
  s.schedule.name = schedule.get_string("name");
  s.schedule.warmup_steps = schedule.get_int("warmup_steps");
  s.schedule.step_gamma = schedule.get_double("gamma");
  s.schedule.step_every = schedule.get_int("every");
  s.schedule.min_lr = schedule.get_double("min_lr");
  return schedule.values();
}

// optimizer: the plugin's parameters plus lr, schedule and weight decay, which the core applies to every
// optimizer alike.
void resolve_optimizer(const Value& root, const Registry& registry, PipelineSpec& s, Value& resolved) {
  const Value& opt = section(root, "optimizer", false);
  const std::vector<ParamSpec>& core_keys = core_specs("optimizer");
  std::vector<std::string> core_names = names_of(core_keys);
  core_names.push_back("schedule");
  s.optimizer = choose(registry, Kind::Optimizer, opt, "optimizer", "sgd", core_names);
  Params opt_core = Params::validate(core_keys, only_keys(opt, core_keys), "optimizer");
  s.lr = opt_core.get_double("lr");
  s.weight_decay = opt_core.get_double("weight_decay");
  Value opt_core_resolved = opt_core.values();
  opt_core_resolved.set("schedule", resolve_schedule(opt, s));
  resolved.set("optimizer", resolved_section(s.optimizer, opt_core_resolved));
}

// aggregator: the plugin plus its pre-aggregators (aggregator.pre: a name, or a list of names or sections).
void resolve_aggregator(const Value& root, const Registry& registry, PipelineSpec& s, Value& resolved) {
  const Value& agg = section(root, "aggregator", false);
  s.aggregator = choose(registry, Kind::Aggregator, agg, "aggregator", "mean", {"pre"});
  Value::List pre_resolved;
  const Value* pre = agg.find("pre");
  if (pre && !pre->is_null()) {
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
  resolved.set("aggregator", resolved_section(s.aggregator, Value::map({{"pre", Value::list(pre_resolved)}})));
}

void resolve_attack(const Value& root, const Registry& registry, PipelineSpec& s, Value& resolved) {
  s.attack = choose(registry, Kind::Attack, section(root, "attack", false), "attack", "none", {});
  resolved.set("attack", resolved_section(s.attack, Value()));
}

// training.budget holds exactly one unit; a missing budget is 100 steps.
Value resolve_budget(const Value& training, PipelineSpec& s) {
  const Value* budget = training.find("budget");
  if (!budget || budget->is_null()) {
    s.budget = {"steps", 100};
  } else {
    if (budget->type() != Value::Type::Map || budget->as_map().size() != 1)
      throw Error(at(*budget) + "training.budget must hold exactly one of steps, epochs or gradients, "
                                "e.g. {epochs: 2}");
    Params::validate(core_specs("training.budget"), *budget, "training.budget");
    const auto& [unit, amount] = budget->as_map().front();
    if (!amount.is_number() || !(amount.as_double() > 0))
      throw Error(at(amount) + "training.budget." + unit + " must be a positive number, got '" + amount.to_string() +
                  "'");
    s.budget = {unit, amount.as_double()};
  }
  return Value::map({{s.budget.unit, Value(s.budget.amount)}});
}

void resolve_training(const Value& root, PipelineSpec& s, Value& resolved) {
  const Value& training = section(root, "training", false);
  Params train = Params::validate(core_specs("training"), training, "training", {"budget"});
  s.batch_size = train.get_int("batch_size");
  s.eval_every = train.get_int("eval_every");
  s.eval_batch_size = train.get_int("eval_batch_size");
  s.threads = train.get_int("threads");
  Value train_resolved = train.values();
  train_resolved.set("budget", resolve_budget(training, s));
  resolved.set("training", train_resolved);
}

// server_data: {samples: N}: the server's own clean sample, whose gradient aggregators receive each round
// (RoundContext::server_gradient). Written to the resolved config only when given, so configs without it
// resolve exactly as before.
void resolve_server_data(const Value& root, PipelineSpec& s, Value& resolved) {
  const Value* given = root.find("server_data");
  if (!given || given->is_null()) return;
  Params p = Params::validate(core_specs("server_data"), *given, "server_data");
  s.server_samples = p.get_int("samples");
  resolved.set("server_data", p.values());
}

// What a plugin's declared need (PluginInfo::needs) requires of the config; empty when this config provides it.
std::string missing_need(Need need, const PipelineSpec& s) {
  switch (need) {
    case Need::ServerGradient:
      return s.server_samples > 0 ? "" : "add `server_data: {samples: 100}` to the config";
    case Need::WorkerIds:
    case Need::Parameters:
    case Need::ByzantineShapeOnly:
      return "";
    case Need::DefenceOracle:
      if (s.engine == "async" && s.buffer < 2)
        return "the asynchronous engine runs the defence only on buffered rounds; set `engine: {buffer: N}` with "
               "N >= 2";
      return "";
  }
  return "";
}

// Each configured plugin's declared needs against what this config (and its engine) provides, so a config that
// cannot satisfy one fails here, at validation, naming the plugin and the key to add.
void check_needs(const Value& root, const Registry& registry, const PipelineSpec& s) {
  auto check = [&](Kind kind, const PluginChoice& choice, const std::string& section_key) {
    const Value* section = root.find(section_key);
    const std::string where = section ? at(*section) : "";
    for (Need need : registry.find(kind, choice.name).info.needs) {
      const std::string fix = missing_need(need, s);
      if (!fix.empty())
        throw Error(where + std::string(kind_name(kind)) + " '" + choice.name + "' (" + choice.path + ") needs " +
                    need_name(need) + ", which this config does not provide: " + fix);
    }
  };
  for (const auto& pre : s.preaggregators) check(Kind::PreAggregator, pre, "aggregator");
  check(Kind::Aggregator, s.aggregator, "aggregator");
  check(Kind::Attack, s.attack, "attack");
  check(Kind::Optimizer, s.optimizer, "optimizer");
}

void resolve_compare(const Value& root, PipelineSpec& s, Value& resolved) {
  const Value* compare = root.find("compare");
  if (!compare) return;
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

}  // namespace

PipelineSpec resolve_pipeline(const Value& root, const Registry& registry) {
  check_top_level_keys(root);
  PipelineSpec s;
  std::string loc = root.location();
  s.source = loc.substr(0, loc.rfind(':'));
  Value resolved = Value::map({});
  // The order fixes the order of config.yaml's sections and which error a config with several shows first.
  resolve_top_level(root, s, resolved);
  resolve_workers(root, s, resolved);
  resolve_engine(root, s, resolved);
  resolve_data(root, registry, s, resolved);
  resolve_model(root, registry, s, resolved);
  resolve_optimizer(root, registry, s, resolved);
  resolve_aggregator(root, registry, s, resolved);
  resolve_attack(root, registry, s, resolved);
  resolve_training(root, s, resolved);
  resolve_server_data(root, s, resolved);
  s.plugin_paths = config_plugin_paths(root);
  if (const Value* plugins = root.find("plugins")) resolved.set("plugins", *plugins);
  check_needs(root, registry, s);
  resolve_compare(root, s, resolved);
  s.resolved = std::move(resolved);
  return s;
}

ComparisonOutline resolve_outline(const Value& root) {
  check_top_level_keys(root);
  PipelineSpec s;
  Value resolved = Value::map({});
  resolve_top_level(root, s, resolved);
  resolve_compare(root, s, resolved);
  return {s.name, std::move(s.compare)};
}

}  // namespace phalanx::core
