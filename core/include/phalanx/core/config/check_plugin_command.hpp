// The `phalanx check-plugin` command: its arguments (promises, YAML parameter maps) read into CheckOptions,
// then the plugin checker (phalanx/core/plugins/plugin_check.hpp) run on one library. Here and not in
// plugins/ because reading --params is reading YAML, which is this layer's job.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace phalanx::core {

/// `phalanx check-plugin LIB [--expect NAME=PROMISES]... [--params NAME='{key: value}']...`: loads LIB alone,
/// prints one line per property per plugin to `out` and returns 0 when no property fails, 1 otherwise.
/// Throws phalanx::Error when LIB cannot be loaded or the arguments are wrong.
int check_plugin_command(const std::vector<std::string>& args, std::ostream& out);

extern const char* const kCheckPluginUsage;

}  // namespace phalanx::core
