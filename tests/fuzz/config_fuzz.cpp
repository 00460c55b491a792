// Fuzzes the config loader the way `phalanx validate` uses it: YAML file -> Value tree (core/src/config/config.cpp),
// `--set` overrides, compare/sweep/seeds expansion (sweep.cpp, compare.cpp) and validation into a
// PipelineSpec (pipeline.cpp, the registry's parameter checks). The input is the config text; bytes after
// the first NUL are `--set` assignments, one per line.
//
// The plugins are the real ones whose sources tests/fuzz/CMakeLists.txt links statically (PHALANX_FUZZ_PLUGINS),
// so the configs are checked against their real parameter lists. Besides "no crash", the resolved config must
// survive the trip the run's config.yaml takes (to_yaml, then parse_yaml as `phalanx report` reads it)
// unchanged.
#include <cstdint>
#include <memory>

#include "fuzz_support.hpp"
#include "phalanx/abi.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/experiment/sweep.hpp"

// Each statically linked plugin's handshake function (tests/fuzz/CMakeLists.txt writes the list).
#define PHALANX_FUZZ_STATIC_PLUGIN(id) extern "C" const phalanx_handshake* phalanx_static_plugin_##id();
#include "static_plugins.inc"
#undef PHALANX_FUZZ_STATIC_PLUGIN

namespace {

using namespace phalanx;

const core::Registry& registry() {
  static const auto r = [] {
    auto out = std::make_unique<core::Registry>();
#define PHALANX_FUZZ_STATIC_PLUGIN(id)                                                  \
  {                                                                                      \
    const phalanx_handshake* h = phalanx_static_plugin_##id();                           \
    out->register_inline(h->library_name, h->register_plugins);                          \
  }
#include "static_plugins.inc"
#undef PHALANX_FUZZ_STATIC_PLUGIN
    return out;
  }();
  return *r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::vector<std::string> parts = fuzz::split_at_nul(data, size);
  const std::string file = fuzz::write_file(fuzz::scratch_dir() / "fuzz.yaml",
                                            reinterpret_cast<const std::uint8_t*>(parts[0].data()), parts[0].size());
  Value root;
  bool loaded = false;
  // Errors about the file itself must name it.
  fuzz::expect_clean(file, [&] {
    root = core::load_yaml_file(file);
    loaded = true;
  });
  if (!loaded) return 0;
  fuzz::expect_clean("", [&] {
    for (std::size_t i = 1; i < parts.size(); ++i) {
      std::size_t start = 0;
      while (start <= parts[i].size()) {
        std::size_t end = parts[i].find('\n', start);
        if (end == std::string::npos) end = parts[i].size();
        if (end > start) core::apply_override(root, parts[i].substr(start, end - start));
        start = end + 1;
      }
    }
    const auto runs = core::expand_sweep(root);
    for (std::size_t i = 0; i < runs.size() && i < 16; ++i) {
      const core::PipelineSpec spec = core::resolve_pipeline(runs[i].config, registry());
      const std::string written = core::to_yaml(spec.resolved);
      const Value reread = core::parse_yaml(written, "config.yaml");
      if (reread.to_string() != spec.resolved.to_string())
        fuzz::finding("the resolved config changes when written and read back:\n" + spec.resolved.to_string() +
                      "\nbecame\n" + reread.to_string());
    }
  });
  return 0;
}
