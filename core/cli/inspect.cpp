// The verbs that read without training: `phalanx validate`, `phalanx plugins`, `phalanx report`.
#include <filesystem>
#include <iostream>

#include "cli.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/check_plugin_command.hpp"
#include "phalanx/core/config/core_params.hpp"
#include "phalanx/core/engine.hpp"
#include "phalanx/core/engine/preflight.hpp"
#include "phalanx/core/experiment/sweep.hpp"
#include "phalanx/core/run/memory_guard.hpp"

namespace phalanx::cli {

namespace fs = std::filesystem;
using namespace phalanx::core;

namespace {

void print_plugin(const PluginEntry& e) {
  std::cout << "  " << e.info.name << "  -  " << e.info.summary << "\n";
  for (const auto& p : e.info.params) {
    std::cout << "      " << p.name << " (" << param_type_name(p.type) << ", default "
              << (p.default_value.is_null() ? std::string("auto") : p.default_value.to_string()) << ")";
    if (p.min || p.max)
      std::cout << " in [" << (p.min ? Value(*p.min).to_string() : "-inf") << ", "
                << (p.max ? Value(*p.max).to_string() : "inf") << "]";
    if (!p.choices.empty()) {
      std::cout << " one of";
      for (const auto& c : p.choices) std::cout << " " << c;
    }
    std::cout << ": " << p.help << "\n";
  }
  for (const auto& d : e.info.diagnostics)
    std::cout << "      diagnostic " << e.info.name << "." << d.name << " ("
              << (d.summary == DiagnosticSummary::Last ? "last" : "mean") << " per metrics row): " << d.help << "\n";
  for (Need need : e.info.needs) std::cout << "      needs " << need_name(need) << "\n";
}

}  // namespace

int cmd_plugins(const Options& o) {
  if (o.kind == "core") return print_core_params(std::cout);  // the core's own keys, like a plugin's
  Registry registry;
  load_plugins(registry, o, nullptr);
  std::vector<Kind> kinds = all_kinds();
  if (!o.kind.empty()) {
    Kind k;
    if (!kind_from_name(o.kind, k)) throw UsageError("unknown plugin kind '" + o.kind + "'");
    kinds = {k};
  }
  for (Kind k : kinds) {
    std::cout << kind_name(k) << (k == Kind::Data ? "" : "s") << ":\n";
    for (const PluginEntry* e : registry.list(k)) print_plugin(*e);
  }
  return 0;
}

int cmd_validate(const Options& o) {
  Value root = load_config(o);
  Registry registry;
  load_plugins(registry, o, &root);
  report_options_of(root);
  const auto runs = expand_sweep(root);  // every compare variant, sweep cell and seed
  std::vector<std::string> warnings;
  for (const auto& r : runs) warnings.insert(warnings.end(), r.warnings.begin(), r.warnings.end());
  print_config_warnings(warnings);
  const MemoryLimit limit = memory_limit(o.max_memory);
  for (const auto& r : runs) {
    try {
      PipelineSpec spec = resolve_pipeline(r.config, registry);
      check_plugins(spec, registry);
      const MemoryEstimate estimate = preflight(spec, registry, limit);
      std::cout << (runs.size() == 1 ? "" : "run '" + r.label + "': ") << estimate.describe(limit) << "\n";
    } catch (const Error& e) {
      throw Error(runs.size() == 1 ? std::string(e.what()) : "in run '" + r.label + "': " + e.what());
    }
  }
  std::cout << o.config << ": OK (" << runs.size() << (runs.size() == 1 ? " run" : " runs") << ")\n";
  return 0;
}

int cmd_report(const Options& o) {
  if (o.config.empty()) throw UsageError("'report' needs a folder of runs");
  ReportOptions report;
  if (fs::exists(o.config + "/sweep.yaml")) report = report_options_of(load_yaml_file(o.config + "/sweep.yaml"));
  if (!o.best.empty()) report.best_over = o.best;
  report.plots = o.plots;
  std::cout << write_report(o.config, report);
  return 0;
}

int cmd_check_plugin(const Options& o) {
  if (o.config.empty()) throw UsageError("check-plugin needs the plugin library: phalanx check-plugin LIB");
  std::vector<std::string> args{o.config};
  for (const auto& e : o.expect) args.insert(args.end(), {"--expect", e});
  for (const auto& p : o.params) args.insert(args.end(), {"--params", p});
  return check_plugin_command(args, std::cout);
}

}  // namespace phalanx::cli
