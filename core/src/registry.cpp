#include "phalanx/core/registry.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include "phalanx/abi.hpp"
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

// The Registrar handed to a library's register function.
class Registry::Collector : public Registrar {
 public:
  explicit Collector(Registry& r) : registry_(r) {}
  void add_aggregator(PluginInfo i, Factory<Aggregator> f) override { put(Kind::Aggregator, std::move(i), f); }
  void add_preaggregator(PluginInfo i, Factory<PreAggregator> f) override {
    put(Kind::PreAggregator, std::move(i), f);
  }
  void add_attack(PluginInfo i, Factory<Attack> f) override { put(Kind::Attack, std::move(i), f); }
  void add_optimizer(PluginInfo i, Factory<Optimizer> f) override { put(Kind::Optimizer, std::move(i), f); }
  void add_data(PluginInfo i, Factory<DataSource> f) override { put(Kind::Data, std::move(i), f); }
  void add_model(PluginInfo i, Factory<Model> f) override { put(Kind::Model, std::move(i), f); }

 private:
  template <class T>
  void put(Kind kind, PluginInfo info, Factory<T> f) {
    if (!f) throw Error(registry_.current_origin_ + ": " + kind_name(kind) + " '" + info.name + "' has no factory");
    registry_.add(kind, std::move(info), std::make_shared<Factory<T>>(std::move(f)));
  }
  Registry& registry_;
};

Registry::Registry() = default;

Registry::~Registry() {
  // Factories live in their libraries: drop them before the libraries can go.
  slots_.clear();
}

void Registry::add(Kind kind, PluginInfo info, std::shared_ptr<void> factory) {
  if (info.name.empty()) throw Error(current_origin_ + ": registered a " + kind_name(kind) + " without a name");
  auto key = std::make_pair(kind, info.name);
  auto it = slots_.find(key);
  if (it != slots_.end()) {
    throw Error("duplicate " + std::string(kind_name(kind)) + " '" + info.name + "': registered by " +
                it->second->entry.origin + " and again by " + current_origin_ +
                ". Remove one of the libraries from the plugin path or rename the plugin.");
  }
  auto slot = std::make_unique<Slot>();
  slot->entry = PluginEntry{kind, std::move(info), current_origin_, current_library_};
  slot->factory = std::move(factory);
  slots_.emplace(key, std::move(slot));
}

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
    throw Error("plugin library " + file + " has no '" PHALANX_HANDSHAKE_SYMBOL
                "' symbol: it is not a phalanx plugin. Write the registration with PHALANX_PLUGIN(...) "
                "from <phalanx/plugin.hpp>, or remove the file from the plugin path.");
  }
  auto handshake_fn = lib->library.get<const phalanx_handshake*()>(PHALANX_HANDSHAKE_SYMBOL);
  const phalanx_handshake* h = handshake_fn();
  if (!h || h->struct_size < sizeof(phalanx_handshake) - sizeof(void*)) {
    throw Error("plugin library " + file + " returned a malformed handshake (size " +
                std::to_string(h ? h->struct_size : 0) + ", expected " + std::to_string(sizeof(phalanx_handshake)) +
                "). Rebuild it against this phalanx SDK.");
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

  current_library_ = lib;
  current_origin_ = file;
  Collector collector(*this);
  try {
    h->register_plugins(static_cast<Registrar*>(&collector));
  } catch (const Error&) {
    current_library_.reset();
    throw;
  } catch (const std::exception& e) {
    current_library_.reset();
    throw Error("plugin library " + file + " failed while registering: " + e.what());
  }
  current_library_.reset();
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
  current_library_ = std::make_shared<LoadedLibrary>();
  current_library_->path = "<builtin:" + library_name + ">";
  current_origin_ = current_library_->path;
  Collector collector(*this);
  register_plugins(static_cast<Registrar*>(&collector));
  current_library_.reset();
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
