// Conformance properties every plugin should have (docs/plugins.md, "Checking a plugin"): what
// `phalanx check-plugin LIB` runs on an author's library before it is published, and what
// tests/core/plugin_check_test.cpp runs on the built-in plugins.
//
// The checker never branches on a plugin's name: what a rule does not promise (robustness, permutation
// invariance) is stated by its author as an AggregatorPromises, on the command line as
// `--expect NAME=not-robust,...`.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "phalanx/core/plugins/registry.hpp"

namespace phalanx::core {

/// What an aggregator promises; the defaults are what a Byzantine-robust rule must do.
struct AggregatorPromises {
  bool robust = true;                 // a finite [d] result while at most f rows hold NaN/Inf
  bool bounds_magnitude = true;       // a result near the honest rows while f rows are huge
  bool permutation_invariant = true;  // the same result for the rows in any order
  std::int64_t trusted_rows = 0;      // leading rows the rule trusts by definition: never permuted or made bad
};

struct CheckOptions {
  std::map<std::string, AggregatorPromises> promises;  // by aggregator name; absent means the defaults
  /// Parameters by plugin name (a map, as in a config section), for plugins with a required parameter;
  /// absent means the declared defaults.
  std::map<std::string, Value> params;
};

enum class CheckStatus { Pass, Fail, Skip };

struct CheckResult {
  std::string plugin;    // "aggregator 'mean'"
  std::string property;  // "determinism"
  CheckStatus status = CheckStatus::Fail;
  std::string detail;    // why it failed, what was skipped, or the setting it passed in
};

/// Every property that applies to the plugin's kind (parameter declarations for all kinds; behaviour for
/// aggregators, pre-aggregators, attacks and optimizers). Exceptions from the plugin become failures.
std::vector<CheckResult> check_plugin(const Registry& registry, const PluginEntry& entry,
                                      const CheckOptions& options);
/// check_plugin on every plugin in the registry, kind by kind.
std::vector<CheckResult> check_registry(const Registry& registry, const CheckOptions& options);

/// "PASS  aggregator 'mean'  determinism  (n = 7, f = 2)".
std::string format_result(const CheckResult& result);

/// Reads "NAME=PROMISE[,PROMISE]" with PROMISE one of not-robust, unbounded, order-dependent,
/// trusts-first-row into `options`. Throws phalanx::Error naming the bad part and the valid ones.
void parse_promises(const std::string& text, CheckOptions& options);

}  // namespace phalanx::core
