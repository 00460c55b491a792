// Helpers every verb uses: plugins, the config, the report section, what child processes inherit, logging.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "cli.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/run/run_output.hpp"

namespace phalanx::cli {

namespace fs = std::filesystem;
using namespace phalanx::core;

namespace {

// A PHALANX_PLUGIN_PATH entry that is not a folder is most likely a typo; say so (once per process) rather
// than let it surface later as "unknown aggregator".
void warn_about_missing_env_plugin_dirs() {
  static bool warned = false;
  const char* env = std::getenv("PHALANX_PLUGIN_PATH");
  if (warned || !env) return;
  warned = true;
  std::stringstream in(env);
  for (std::string item; std::getline(in, item, ':');) {
    std::error_code ec;
    if (!item.empty() && !fs::is_directory(item, ec))
      std::cerr << "phalanx: warning: PHALANX_PLUGIN_PATH names '" + item + "', which is not a folder; it is "
                   "ignored (fix or remove the entry)\n";
  }
}

}  // namespace

void print_config_warnings(const std::vector<std::string>& warnings) {
  std::vector<std::string> shown;
  for (const auto& w : warnings) {
    if (std::find(shown.begin(), shown.end(), w) != shown.end()) continue;
    shown.push_back(w);
    std::cerr << "phalanx: warning: " << w << "\n";
  }
}

void load_plugins(Registry& registry, const Options& o, const Value* config) {
  warn_about_missing_env_plugin_dirs();
  std::vector<std::string> extra = o.plugin_paths;
  if (config) {
    auto from_config = config_plugin_paths(*config);
    extra.insert(extra.end(), from_config.begin(), from_config.end());
  }
  for (const auto& dir : plugin_search_path(extra)) registry.load_directory(dir);
  if (registry.loaded_files().empty()) {
    std::string looked;
    for (const auto& d : plugin_search_path(extra)) looked += "\n  " + d;
    throw Error("no plugin libraries found; looked in: " + looked +
                "\nIs phalanx installed (cmake --install), or is PHALANX_PLUGIN_PATH set?");
  }
}

Value load_config(const Options& o) {
  if (o.config.empty()) throw UsageError("'" + o.command + "' needs a config file");
  Value root = load_yaml_file(o.config);
  for (const auto& assignment : o.overrides) apply_override(root, assignment);
  return root;
}

void refuse_distributed(const PipelineSpec& spec) {
  if (spec.distributed)
    throw Error(spec.source + ": engine.distributed is true: this is the config of a distributed run; start it "
                "with `phalanx launch -n " + std::to_string(spec.workers + 1) + "`, or simulate it with "
                "--set engine.distributed=false");
}

std::vector<std::string> child_args(const Options& o) {
  std::vector<std::string> args;
  for (const auto& p : o.plugin_paths) args.insert(args.end(), {"--plugin-path", fs::absolute(p).string()});
  if (o.log_level != "info") args.insert(args.end(), {"--log-level", o.log_level});
  if (o.quiet) args.push_back("--quiet");
  return args;
}

// The config's `report` section: {best_over: [keys], plot_by: [keys]}.
// The config's `report` section (keys: docs/configs.md).
ReportOptions report_options_of(const Value& root) {
  const Value* report = root.find("report");
  return report ? report_options_from(*report) : ReportOptions{};
}

void apply_logging(const Options& o) {
  set_log_options(spdlog::level::from_str(o.log_level), o.quiet);
}

}  // namespace phalanx::cli
