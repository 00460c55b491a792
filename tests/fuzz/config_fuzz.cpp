// Fuzzes the config loader the way `phalanx validate` uses it: YAML file -> Value tree (core/src/config/config.cpp),
// `--set` overrides, compare/sweep/seeds expansion (sweep.cpp, compare.cpp) and validation into a
// PipelineSpec (pipeline.cpp, the registry's parameter checks). The input is the config text; bytes after
// the first NUL are `--set` assignments, one per line.
//
// The plugins are stand-ins registered in-process with the parameter kinds of the real ones (ints with
// ranges, doubles, choices, lists, "auto" defaults), so the harness needs no plugin libraries. Besides
// "no crash", the resolved config must survive the trip the run's config.yaml takes (to_yaml, then
// parse_yaml as `phalanx report` reads it) unchanged.
#include <cstdint>
#include <memory>

#include "fuzz_support.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/core/experiment/sweep.hpp"

namespace {

using namespace phalanx;

template <class T>
Factory<T> never() {
  return [](const Params&, const Context&) -> std::unique_ptr<T> { return nullptr; };
}

void register_stand_ins(void* r) {
  Registrar& reg = *static_cast<Registrar*>(r);
  reg.add_data({"synthetic", "", {{"train_size", ParamType::Int, 4000, "", 1}, {"test_size", ParamType::Int, 1000, "", 1},
                                  {"features", ParamType::Int, 20, "", 1}, {"classes", ParamType::Int, 4, "", 2},
                                  {"separation", ParamType::Double, 1.0, "", 0.0}}},
               never<DataSource>());
  reg.add_data({"fashion_mnist", "", {{"path", ParamType::String, "/usr/share/datasets/fashion-mnist", ""}}},
               never<DataSource>());
  reg.add_model({"mlp", "", {{"hidden", ParamType::IntList, Value::list({200}), "", 1, 1e6}}}, never<Model>());
  reg.add_model({"logreg", "", {}}, never<Model>());
  reg.add_model({"resnet20", "", {{"width", ParamType::Int, 16, "", 1, 1024},
                                  {"norm", ParamType::String, "batchnorm", "", {}, {}, {"batchnorm", "groupnorm", "none"}}}},
                never<Model>());
  reg.add_optimizer({"sgd", "", {}}, never<Optimizer>());
  reg.add_optimizer({"ormo_da", "", {{"beta", ParamType::Double, 0.9, "", 0.0, 1.0},
                                     {"rule", ParamType::String, "inverse", "", {}, {}, {"inverse", "exponential"}},
                                     {"c", ParamType::Double, Value(), "", 1e-12},
                                     {"iteration_every", ParamType::Int, Value(), "", 1},
                                     {"vanilla_step", ParamType::Bool, false, ""}}},
                    never<Optimizer>());
  reg.add_aggregator({"mean", "", {}}, never<Aggregator>());
  reg.add_aggregator({"cc", "", {{"tau", ParamType::Double, 0.1, "", 1e-12}, {"iterations", ParamType::Int, 1, "", 1, 1000}}},
                     never<Aggregator>());
  reg.add_aggregator({"krum", "", {{"f", ParamType::Int, Value(), "", 0}}}, never<Aggregator>());
  reg.add_preaggregator({"nnm", "", {{"f", ParamType::Int, Value(), "", 0}}}, never<PreAggregator>());
  reg.add_preaggregator({"bucketing", "", {{"s", ParamType::Int, 2, "", 1}}}, never<PreAggregator>());
  reg.add_attack({"none", "", {}}, never<Attack>());
  reg.add_attack({"alie", "", {{"z", ParamType::Double, Value(), ""}}}, never<Attack>());
  reg.add_attack({"gaussian", "", {{"sigma", ParamType::DoubleList, Value::list({200.0}), "", 0.0}}}, never<Attack>());
}

const core::Registry& registry() {
  static const auto r = [] {
    auto out = std::make_unique<core::Registry>();
    out->register_inline("fuzz_stand_ins", &register_stand_ins);
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
