#include "phalanx/core/plugins/registry.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>

#include <boost/dll/library_info.hpp>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include "phalanx/abi.hpp"
#include "phalanx/core/plugins/plugin_guard.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace fs = std::filesystem;

struct LoadedLibrary {
  boost::dll::shared_library library;  // empty for inline registrations
  std::string path;
};

// Type-erased factory of one plugin, plus its entry. Factories are std::function objects created inside
// the plugin library; the entry's library pointer keeps that code loaded.
struct Registry::Slot {
  PluginEntry entry;
  std::shared_ptr<void> factory;  // points at a phalanx::Factory<T>
};

const std::vector<Kind>& all_kinds() {
  static const std::vector<Kind> kinds{Kind::Data,      Kind::Model,         Kind::Optimizer,
                                       Kind::Aggregator, Kind::PreAggregator, Kind::Attack};
  return kinds;
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::Aggregator: return "aggregator";
    case Kind::PreAggregator: return "preaggregator";
    case Kind::Attack: return "attack";
    case Kind::Optimizer: return "optimizer";
    case Kind::Data: return "data";
    case Kind::Model: return "model";
  }
  return "?";
}

bool kind_from_name(const std::string& name, Kind& out) {
  for (Kind k : all_kinds()) {
    if (name == kind_name(k) || name == std::string(kind_name(k)) + "s") {
      out = k;
      return true;
    }
  }
  return false;
}

// The Registrar handed to a library's register function. It collects the library's plugins apart from the
// registry, which receives them only once the register function has returned: a library whose registration
// throws or repeats a name registers nothing, so no half of it stays behind.
class Registry::Collector : public Registrar {
 public:
  Collector(const Registry& r, std::string origin, std::shared_ptr<LoadedLibrary> library)
      : registry_(r), origin_(std::move(origin)), library_(std::move(library)) {}
  void add_aggregator(PluginInfo i, Factory<Aggregator> f) override { put(Kind::Aggregator, std::move(i), f); }
  void add_preaggregator(PluginInfo i, Factory<PreAggregator> f) override {
    put(Kind::PreAggregator, std::move(i), f);
  }
  void add_attack(PluginInfo i, Factory<Attack> f) override { put(Kind::Attack, std::move(i), f); }
  void add_optimizer(PluginInfo i, Factory<Optimizer> f) override { put(Kind::Optimizer, std::move(i), f); }
  void add_data(PluginInfo i, Factory<DataSource> f) override { put(Kind::Data, std::move(i), f); }
  void add_model(PluginInfo i, Factory<Model> f) override { put(Kind::Model, std::move(i), f); }

  std::map<std::pair<Kind, std::string>, std::unique_ptr<Slot>> collected;

 private:
  template <class T>
  void put(Kind kind, PluginInfo info, Factory<T> f) {
    if (!f) throw Error(origin_ + ": " + kind_name(kind) + " '" + info.name + "' has no factory");
    if (info.name.empty()) throw Error(origin_ + ": registered a " + kind_name(kind) + " without a name");
    check_diagnostics(kind, info);
    auto key = std::make_pair(kind, info.name);
    auto it = registry_.slots_.find(key);
    const std::string first = it != registry_.slots_.end() ? it->second->entry.origin
                              : collected.count(key)       ? origin_ + " (twice)"
                                                           : std::string();
    if (!first.empty()) {
      throw Error("duplicate " + std::string(kind_name(kind)) + " '" + info.name + "': registered by " + first +
                  " and again by " + origin_ + ". Remove one of the libraries from the plugin path or rename the plugin.");
    }
    auto slot = std::make_unique<Slot>();
    slot->entry = PluginEntry{kind, std::move(info), origin_, library_};
    slot->factory = std::make_shared<Factory<T>>(std::move(f));
    collected.emplace(key, std::move(slot));
  }
  // Each diagnostic becomes a metrics column `<plugin>.<name>` in CSV and JSON files: names are [a-z0-9_]+ and
  // unique within the plugin.
  void check_diagnostics(Kind kind, const PluginInfo& info) const {
    std::set<std::string> seen;
    for (const auto& d : info.diagnostics) {
      const bool plain = !d.name.empty() && std::all_of(d.name.begin(), d.name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
      });
      if (!plain || !seen.insert(d.name).second)
        throw Error(origin_ + ": " + kind_name(kind) + " '" + info.name + "' declares the diagnostic '" + d.name +
                    "'" + (plain ? " twice" : ", which is not a name of lowercase letters, digits and '_'"));
    }
  }

  const Registry& registry_;
  std::string origin_;
  std::shared_ptr<LoadedLibrary> library_;
};

Registry::Registry() = default;

Registry::~Registry() {
  // Factories live in their libraries: drop them before the libraries can go.
  slots_.clear();
}

void Registry::register_from(const std::string& origin, std::shared_ptr<LoadedLibrary> library,
                             void (*register_plugins)(void*)) {
  Collector collector(*this, origin, std::move(library));
  try {
    register_plugins(static_cast<Registrar*>(&collector));
  } catch (const std::exception& e) {
    // The registry's own errors (a duplicate name) already name the library; a plugin's own may not.
    if (std::string(e.what()).find(origin) != std::string::npos) throw;
    throw Error("plugin library " + origin + " failed while registering: " + e.what());
  } catch (...) {
    throw Error("plugin library " + origin + " failed while registering (a non-standard exception)");
  }
  for (auto& [key, slot] : collector.collected) slots_.emplace(key, std::move(slot));
}

namespace {

// The ABI version a library's entry symbol names, or -1 when it exports none: "phalanx_plugin_handshake"
// (version 1) or "phalanx_plugin_handshake_vN".
int entry_symbol_version(const std::string& file, std::string& symbol) {
  try {
    boost::dll::library_info info(file);
    for (const std::string& name : info.symbols()) {
      if (name == PHALANX_HANDSHAKE_SYMBOL_V1) {
        symbol = name;
        return 1;
      }
      const std::string prefix = PHALANX_HANDSHAKE_SYMBOL_V1 "_v";
      if (name.rfind(prefix, 0) == 0) {
        symbol = name;
        try {
          return std::stoi(name.substr(prefix.size()));
        } catch (const std::exception&) {
          return 0;
        }
      }
    }
  } catch (const std::exception&) {
    // Not readable as a shared object's symbol table: report it as exporting nothing.
  }
  return -1;
}

// The handshake's fields are read only when `struct_size` says the library wrote them.
void check_handshake(const std::string& file, const phalanx_handshake* h) {
  if (!h || h->struct_size < sizeof(phalanx_handshake)) {
    throw Error("plugin library " + file + " returned a truncated handshake (size " +
                std::to_string(h ? h->struct_size : 0) + " bytes, this phalanx needs " +
                std::to_string(sizeof(phalanx_handshake)) + "). Rebuild it against this phalanx SDK.");
  }
  if (h->abi_version != PHALANX_SDK_ABI_VERSION) {
    throw Error("plugin library " + file + " was built for phalanx SDK ABI version " +
                std::to_string(h->abi_version) + ", but this phalanx has ABI version " +
                std::to_string(PHALANX_SDK_ABI_VERSION) + ". Rebuild the plugin against the installed SDK "
                "(find_package(phalanx)).");
  }
  const std::string fingerprint = h->fingerprint ? h->fingerprint : "";
  if (fingerprint != PHALANX_BUILD_FINGERPRINT) {
    throw Error("plugin library " + file + " was built with '" + fingerprint + "', but this phalanx was built with '" +
                PHALANX_BUILD_FINGERPRINT + "'. C++ objects cross the plugin boundary, so the compiler, "
                "libstdc++ ABI and LibTorch version must match: rebuild the plugin on this machine.");
  }
  if (!h->register_plugins) throw Error("plugin library " + file + " has no registration function");
}

}  // namespace

void Registry::load_library(const std::string& path) {
  const std::string file = fs::absolute(path).lexically_normal().string();
  for (const auto& done : loaded_files_)
    if (done == file) return;  // the same file reached through two search-path entries

  auto lib = std::make_shared<LoadedLibrary>();
  lib->path = file;
  try {
    lib->library.load(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw Error("cannot load plugin library " + file + ": " + e.what() +
                ". Is it a shared library built for this machine, with its dependencies installed?");
  }
  if (!lib->library.has(PHALANX_HANDSHAKE_SYMBOL)) {
    std::string symbol;
    const int version = entry_symbol_version(file, symbol);
    if (version >= 0) {
      throw Error("plugin library " + file + " was built for phalanx SDK ABI version " + std::to_string(version) +
                  " (it exports '" + symbol + "'), but this phalanx has ABI version " +
                  std::to_string(PHALANX_SDK_ABI_VERSION) + " and looks for '" PHALANX_HANDSHAKE_SYMBOL
                  "'. Rebuild the plugin against this phalanx's SDK (find_package(phalanx)); docs/plugins.md has "
                  "the migration notes.");
    }
    throw Error("plugin library " + file + " has no '" PHALANX_HANDSHAKE_SYMBOL
                "' symbol: it is not a phalanx plugin. Write the registration with PHALANX_PLUGIN(...) "
                "from <phalanx/plugin.hpp>, or remove the file from the plugin path.");
  }
  auto handshake_fn = lib->library.get<const phalanx_handshake*()>(PHALANX_HANDSHAKE_SYMBOL);
  const phalanx_handshake* h = handshake_fn();
  check_handshake(file, h);
  register_from(file, lib, h->register_plugins);
  loaded_files_.push_back(file);
}

void Registry::load_directory(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".so") files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) load_library(f);
}

void Registry::register_inline(const std::string& library_name, void (*register_plugins)(void*)) {
  auto library = std::make_shared<LoadedLibrary>();
  library->path = "<builtin:" + library_name + ">";
  register_from(library->path, library, register_plugins);
}

bool Registry::contains(Kind kind, const std::string& name) const {
  return slots_.count({kind, name}) > 0;
}

std::vector<const PluginEntry*> Registry::list(Kind kind) const {
  std::vector<const PluginEntry*> out;
  for (const auto& [key, slot] : slots_)
    if (key.first == kind) out.push_back(&slot->entry);
  return out;
}

const Registry::Slot& Registry::slot(Kind kind, const std::string& name) const {
  auto it = slots_.find({kind, name});
  if (it != slots_.end()) return *it->second;
  std::vector<std::string> names;
  for (const auto* e : list(kind)) names.push_back(e->info.name);
  std::ostringstream msg;
  msg << "unknown " << kind_name(kind) << " '" << name << "'";
  std::string near = nearest_name(name, names);
  if (!near.empty()) msg << "; did you mean '" << near << "'?";
  if (names.empty()) {
    msg << ". No " << kind_name(kind) << " plugins are loaded: check the plugin path (PHALANX_PLUGIN_PATH, "
        << "the config's plugins.paths, or the install's lib/phalanx/plugins).";
  } else {
    msg << (near.empty() ? "." : "") << " Available: ";
    for (std::size_t i = 0; i < names.size(); ++i) msg << (i ? ", " : "") << names[i];
    msg << ". `phalanx plugins " << kind_name(kind) << "` lists them with their parameters.";
  }
  throw Error(msg.str());
}

const PluginEntry& Registry::find(Kind kind, const std::string& name) const { return slot(kind, name).entry; }

Params Registry::validate(Kind kind, const std::string& name, const Value& section, const std::string& path,
                          const std::vector<std::string>& core_keys) const {
  const Slot& s = slot(kind, name);
  std::vector<std::string> ignored = core_keys;
  ignored.push_back("name");
  return Params::validate(s.entry.info.params, section, path, ignored);
}

namespace {

// Runs a plugin factory, turning any exception into an Error that names the plugin, and ties the new
// object's lifetime to its library.
template <class T>
std::shared_ptr<T> build(const PluginEntry& entry, const Factory<T>& factory, const Params& p, const Context& c) {
  std::unique_ptr<T> object;
  try {
    object = factory(p, c);
  } catch (const Error& e) {
    throw Error(std::string(kind_name(entry.kind)) + " '" + entry.info.name + "': " + e.what());
  } catch (const std::exception& e) {
    throw Error(std::string(kind_name(entry.kind)) + " '" + entry.info.name + "' (" + entry.origin +
                ") failed to start: " + e.what());
  }
  if (!object)
    throw Error(std::string(kind_name(entry.kind)) + " '" + entry.info.name + "' (" + entry.origin +
                ") returned no object");
  std::shared_ptr<LoadedLibrary> keep = entry.library;
  return std::shared_ptr<T>(object.release(), [keep](T* p) { delete p; });
}

}  // namespace

#define PHALANX_MAKE(method, Type, kind)                                                                  \
  std::shared_ptr<Type> Registry::method(const std::string& name, const Params& p, const Context& c) const { \
    const Slot& s = slot(kind, name);                                                                      \
    return build<Type>(s.entry, *std::static_pointer_cast<Factory<Type>>(s.factory), p, c);                \
  }
PHALANX_MAKE(make_aggregator, Aggregator, Kind::Aggregator)
PHALANX_MAKE(make_preaggregator, PreAggregator, Kind::PreAggregator)
PHALANX_MAKE(make_attack, Attack, Kind::Attack)
PHALANX_MAKE(make_optimizer, Optimizer, Kind::Optimizer)
PHALANX_MAKE(make_data, DataSource, Kind::Data)
PHALANX_MAKE(make_model, Model, Kind::Model)
#undef PHALANX_MAKE

std::vector<std::string> plugin_search_path(const std::vector<std::string>& extra) {
  std::vector<std::string> dirs;
  fs::path exe = boost::dll::program_location().string();
  dirs.push_back((exe.parent_path().parent_path() / "lib" / "phalanx" / "plugins").string());
  if (const char* env = std::getenv("PHALANX_PLUGIN_PATH")) {
    std::stringstream in(env);
    std::string item;
    while (std::getline(in, item, ':'))
      if (!item.empty()) dirs.push_back(item);
  }
  dirs.insert(dirs.end(), extra.begin(), extra.end());
  return dirs;
}

}  // namespace phalanx::core

namespace phalanx::core {

std::string plugin_label(const Registry& registry, Kind kind, const std::string& name) {
  return std::string(kind_name(kind)) + " '" + name + "' (" + registry.find(kind, name).origin + ")";
}

}  // namespace phalanx::core
