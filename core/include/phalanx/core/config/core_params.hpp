// The core's own config keys, declared as data in the ParamSpec form plugins use (phalanx/params.hpp):
// the resolver checks them with the same file:line errors and "did you mean" as plugin parameters, and
// `phalanx plugins core` prints them like a plugin's. A new core key is one line here plus its read in
// pipeline.cpp.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "phalanx/params.hpp"

namespace phalanx::core {

/// One config section the core owns ("workers", "engine.speed", "data.partition"; "" is the top level).
struct CoreSection {
  std::string path;
  std::string summary;  // one line, shown by `phalanx plugins core`
  std::vector<ParamSpec> params;
};

/// Every core section, in the order a config usually lists them.
const std::vector<CoreSection>& core_param_specs();

/// The declarations of one section; throws phalanx::Error for a path that is not a core section.
const std::vector<ParamSpec>& core_specs(const std::string& path);

/// The declaration of core key `name` of section `section` ("engine.speed", "comm"), or null when the core
/// declares no such key.
const ParamSpec* core_param(const std::string& section, const std::string& name);

/// True when `path` ("optimizer.schedule") is a core section.
bool is_core_section(const std::string& path);

/// Writes every core section with its keys' types, defaults, ranges and help, in the layout of
/// `phalanx plugins KIND`. Returns the exit code (0).
int print_core_params(std::ostream& out);

/// One parameter as `phalanx plugins` prints it: "name (type, default D) in [a, b] one of x y: help".
std::string describe_param(const ParamSpec& p);

}  // namespace phalanx::core
