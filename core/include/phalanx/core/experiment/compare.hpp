// Side-by-side comparisons: `compare: {aggregator.name: [mean, cm, cc], attack: [{name: bitflip}, ...]}`
// runs every combination of the listed values (a grid, first key varying slowest) in its own folder and
// prints one table of final test accuracies.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "phalanx/core/engine.hpp"
#include "phalanx/value.hpp"

namespace phalanx::core {

struct Variant {
  std::string label;                                  // folder name, e.g. "cm_alie"
  std::vector<std::pair<std::string, Value>> choice;  // key -> value of this variant
  Value config;                                       // the root config with the choice applied
  // A value that replaced a whole section and so dropped core keys the base had set there (optimizer: {name:
  // byzsgdm} drops a base's schedule: cosine); each names the file and line. Shown by validate and sweep.
  std::vector<std::string> warnings;
};

/// Grid keys named `variants` or `variants_<anything>` (so a grid can hold several) list values that each
/// set several config keys at once: {label: NAME, path: value, ...}.
inline bool is_variants_key(const std::string& key) {
  return key == "variants" || key.rfind("variants_", 0) == 0;
}

/// Expands the root's `compare` section (removed from each variant). No section: one variant.
/// Each variant's `warnings` name the core keys one of its values dropped from the base.
std::vector<Variant> expand_variants(const Value& root);

/// Every distinct warning of `variants`, in order of first appearance.
std::vector<std::string> variant_warnings(const std::vector<Variant>& variants);

/// A short label for a compare value: a name, or {name: cc, tau: 0.1} -> "cc-tau0.1".
std::string value_label(const Value& v);

struct VariantResult {
  Variant variant;
  RunResult result;
  std::string error;  // non-empty when the run failed before finishing
};

/// Markdown table of final test accuracy: with two compare keys, rows are the second key and columns the
/// first; otherwise one row per variant.
std::string comparison_table(const std::vector<std::pair<std::string, std::vector<Value>>>& keys,
                             const std::vector<VariantResult>& results);

}  // namespace phalanx::core
