// The registry: every plugin library loaded into this process and every (kind, name) it registered.
#pragma once

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "phalanx/context.hpp"
#include "phalanx/model.hpp"
#include "phalanx/params.hpp"
#include "phalanx/registrar.hpp"
#include "phalanx/suggest.hpp"

namespace phalanx::core {

enum class Kind { Aggregator, PreAggregator, Attack, Optimizer, Data, Model };
const std::vector<Kind>& all_kinds();
const char* kind_name(Kind kind);  // "aggregator", "preaggregator", ...
bool kind_from_name(const std::string& name, Kind& out);

struct LoadedLibrary;  // a dlopen'ed plugin library; objects created from it keep it alive

struct PluginEntry {
  Kind kind;
  PluginInfo info;
  std::string origin;  // the library file, or "<builtin:NAME>" for libraries registered in-process
  std::shared_ptr<LoadedLibrary> library;

  /// Whether the plugin lists `need` among its needs (or promises, Need::ByzantineShapeOnly).
  bool declares(Need need) const {
    return std::find(info.needs.begin(), info.needs.end(), need) != info.needs.end();
  }
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// Loads one plugin library after checking its handshake (symbol present, struct size, ABI version,
  /// build fingerprint). Throws phalanx::Error naming the file, both versions and what to do.
  void load_library(const std::string& path);
  /// Loads every *.so in `dir` (sorted, so registration order is stable). Missing dirs are skipped.
  void load_directory(const std::string& dir);
  /// Registers plugins from a function in this process (tests, embedding), as if from a library.
  void register_inline(const std::string& library_name, void (*register_plugins)(void*));

  const PluginEntry& find(Kind kind, const std::string& name) const;  // throws with "did you mean"
  bool contains(Kind kind, const std::string& name) const;
  std::vector<const PluginEntry*> list(Kind kind) const;
  const std::vector<std::string>& loaded_files() const { return loaded_files_; }

  /// Validates `section` against the plugin's parameters (`path` names it in errors).
  Params validate(Kind kind, const std::string& name, const Value& section, const std::string& path,
                  const std::vector<std::string>& core_keys = {}) const;

  std::shared_ptr<Aggregator> make_aggregator(const std::string& name, const Params& p, const Context& c) const;
  std::shared_ptr<PreAggregator> make_preaggregator(const std::string& name, const Params& p,
                                                    const Context& c) const;
  std::shared_ptr<Attack> make_attack(const std::string& name, const Params& p, const Context& c) const;
  std::shared_ptr<Optimizer> make_optimizer(const std::string& name, const Params& p, const Context& c) const;
  std::shared_ptr<DataSource> make_data(const std::string& name, const Params& p, const Context& c) const;
  std::shared_ptr<Model> make_model(const std::string& name, const Params& p, const Context& c) const;

 private:
  class Collector;
  struct Slot;
  /// Runs a library's register function and keeps what it registered only when it returns normally.
  void register_from(const std::string& origin, std::shared_ptr<LoadedLibrary> library,
                     void (*register_plugins)(void*));
  const Slot& slot(Kind kind, const std::string& name) const;

  std::map<std::pair<Kind, std::string>, std::unique_ptr<Slot>> slots_;
  std::vector<std::string> loaded_files_;
};

/// The plugin directories in search order: next to the executable (../lib/phalanx/plugins), then
/// PHALANX_PLUGIN_PATH (colon-separated), then `extra` (from the config's plugins.paths).
std::vector<std::string> plugin_search_path(const std::vector<std::string>& extra = {});

using phalanx::nearest_name;

}  // namespace phalanx::core
