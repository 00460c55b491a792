// YAML in and out. The file is read into the SDK's Value tree (every value knows its file:line), `--set`
// overrides are applied, and the resolved tree is written back as the run's config.yaml.
#pragma once

#include <string>

#include "phalanx/value.hpp"

namespace phalanx::core {

/// Reads a YAML file. Throws phalanx::Error with file:line on syntax errors and missing files.
Value load_yaml_file(const std::string& path);
/// Parses YAML text; `origin` names it in locations ("--set", a test name).
Value parse_yaml(const std::string& text, const std::string& origin);

/// Applies "a.b.c=value" (value parsed as YAML) to a map tree, creating maps on the way.
void apply_override(Value& root, const std::string& assignment);
/// Sets `dotted` ("aggregator.name") in a map tree, creating maps on the way.
void set_path(Value& root, const std::string& dotted, Value value);
/// The value at `dotted`, or nullptr.
const Value* get_path(const Value& root, const std::string& dotted);

/// Block-style YAML for a Value tree.
std::string to_yaml(const Value& v);

}  // namespace phalanx::core
