// The `phalanx check-plugin` command (check_plugin_command.hpp).
#include "phalanx/core/config/check_plugin_command.hpp"

#include <ostream>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/plugins/plugin_check.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

const char* const kCheckPluginUsage =
    "  phalanx check-plugin LIB [--expect NAME=PROMISE[,PROMISE]]... [--params NAME={key: value}]...\n"
    "      Load the plugin library LIB alone and run the conformance properties on each plugin in it (shape,\n"
    "      dtype, determinism, permutation invariance, NaN/Inf rows, f outliers, state round trip, parameter\n"
    "      declarations); one PASS/FAIL/SKIP line each, exit 0 when none fails. An aggregator that does not\n"
    "      promise everything says so: not-robust, unbounded, order-dependent, trusts-first-row. --params gives\n"
    "      a plugin's parameters (for one with a required parameter): --params clip='{c: 1.0}'.\n";

namespace {

/// --params NAME='{key: value}'
void parse_params(const std::string& text, CheckOptions& options) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw Error("--params '" + text + "': write NAME='{key: value}'");
  Value section = parse_yaml(text.substr(eq + 1), "--params " + text.substr(0, eq));
  if (section.type() != Value::Type::Map) throw Error("--params '" + text + "': the value must be a map {key: value}");
  options.params[text.substr(0, eq)] = section;
}

/// The library and the options of `check-plugin`'s arguments.
std::string parse_check_args(const std::vector<std::string>& args, CheckOptions& options) {
  std::string library;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const bool has_value = i + 1 < args.size();
    if (args[i] == "--expect" && has_value) {
      parse_promises(args[++i], options);
    } else if (args[i] == "--params" && has_value) {
      parse_params(args[++i], options);
    } else if (args[i].rfind("--", 0) != 0 && library.empty()) {
      library = args[i];
    } else {
      throw Error("check-plugin: unexpected argument '" + args[i] + "'\nusage:\n" + kCheckPluginUsage);
    }
  }
  if (library.empty()) throw Error(std::string("check-plugin: no library given\nusage:\n") + kCheckPluginUsage);
  return library;
}

}  // namespace

int check_plugin_command(const std::vector<std::string>& args, std::ostream& out) {
  CheckOptions options;
  const std::string library = parse_check_args(args, options);
  Registry registry;
  registry.load_library(library);
  for (const auto& [name, promises] : options.promises)
    if (!registry.contains(Kind::Aggregator, name))
      throw Error("check-plugin: --expect names '" + name + "', which is no aggregator of " + library);
  std::size_t failures = 0, count = 0;
  for (const CheckResult& r : check_registry(registry, options)) {
    out << format_result(r) << "\n";
    failures += r.status == CheckStatus::Fail;
    ++count;
  }
  if (count == 0) {
    out << "FAIL  " << library << ": registers no plugin\n";
    return 1;
  }
  out << (failures == 0 ? "all " + std::to_string(count) + " properties pass\n"
                        : std::to_string(failures) + " of " + std::to_string(count) + " properties fail\n");
  return failures == 0 ? 0 : 1;
}

}  // namespace phalanx::core
