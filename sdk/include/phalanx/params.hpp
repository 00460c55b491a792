// Typed, validated plugin parameters. A plugin declares its parameters (ParamSpec); the host checks the
// user's values against them before the plugin is constructed: unknown keys, wrong types and
// out-of-range values are errors naming the config path and the line, and defaults are filled in, so
// `Params::get_*` never has to guess.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "phalanx/diagnostics.hpp"
#include "phalanx/export.hpp"
#include "phalanx/value.hpp"

namespace phalanx {

enum class ParamType { Bool, Int, Double, String, IntList, DoubleList };
PHALANX_EXPORT const char* param_type_name(ParamType t);

struct PHALANX_EXPORT ParamSpec {
  std::string name;
  ParamType type = ParamType::Double;
  /// Null means "automatic": the plugin derives it (e.g. f from the number of Byzantine workers); the
  /// help text says how.
  Value default_value;
  std::string help;
  std::optional<double> min;  // inclusive bounds, for numbers and list elements
  std::optional<double> max;
  std::vector<std::string> choices;  // for strings; empty means free text
};

/// What a plugin needs from the run beyond its rows (SDK v3). The host checks the needs against the config
/// when it validates it (`phalanx validate`, and before any run), so a config that cannot provide one is an
/// error naming the plugin and the config key to add, instead of a failure at the first round.
enum class Need {
  ServerGradient,  // RoundContext::server_gradient: the config's `server_data: {samples: N}`, simulations only
  WorkerIds,       // RoundContext::worker_ids (and staleness): not on the distributed asynchronous server
  Parameters,      // RoundContext::parameters: not on the distributed asynchronous server
  DefenceOracle,   // AttackRound::defence: sync rounds, async with engine.buffer >= 2, distributed sync server
  // Not a requirement but a promise, for attacks: craft() reads only the shape of AttackRound::byzantine_true,
  // never its values (ALIE, FoE, Gaussian noise, ...). The synchronous simulation then skips the Byzantine
  // workers' gradients, and their rows hold whatever they held before; `phalanx check-plugin` checks it.
  ByzantineShapeOnly,
};
PHALANX_EXPORT const char* need_name(Need need);

/// Everything the host needs to know about one plugin before creating it. Aggregate-initialised by plugins
/// (`{name, summary, {params...}}`): new members go at the end, with defaults.
struct PHALANX_EXPORT PluginInfo {
  std::string name;
  std::string summary;  // one line, shown by `phalanx plugins`
  std::vector<ParamSpec> params;
  /// The per-round scalars this plugin reports (phalanx/diagnostics.hpp); each becomes a metrics column.
  std::vector<DiagnosticSpec> diagnostics;
  /// What it needs from the run beyond its rows (checked when the config is validated).
  std::vector<Need> needs;
};

class PHALANX_EXPORT Params {
 public:
  Params() = default;

  /// Validates `given` (a map) against `specs` and fills defaults. `path` is the config path of the
  /// section ("aggregator"), used in every message. Throws phalanx::Error.
  static Params validate(const std::vector<ParamSpec>& specs, const Value& given, const std::string& path,
                         const std::vector<std::string>& ignored_keys = {});

  /// True when the key is set (or defaulted) to a non-null value.
  bool has(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  std::int64_t get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  std::string get_string(const std::string& name) const;
  std::vector<std::int64_t> get_int_list(const std::string& name) const;
  std::vector<double> get_double_list(const std::string& name) const;
  /// The integer value, or `fallback` when the parameter is automatic (null).
  std::int64_t get_int_or(const std::string& name, std::int64_t fallback) const;

  /// Throws an Error about parameter `name` that names its config path and line: use it for checks
  /// that need more than one value ("m must be <= n - f").
  [[noreturn]] void fail(const std::string& name, const std::string& problem) const;

  const std::string& path() const { return path_; }
  /// The resolved values (defaults included), for the run's config.yaml.
  const Value& values() const { return values_; }

 private:
  const Value& require(const std::string& name) const;
  std::string where(const std::string& name) const;

  std::string path_;
  Value values_ = Value::map({});
  std::string section_location_;
};

}  // namespace phalanx
