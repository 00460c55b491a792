// Every call into a plugin during a run goes through guard_plugin, so whatever a plugin throws surfaces as a
// phalanx::Error that names the plugin and the library it came from (docs/plugins.md, "Errors").
#pragma once

#include <exception>
#include <string>
#include <utility>

#include "phalanx/error.hpp"

namespace phalanx::core {

class Registry;
enum class Kind;

/// "aggregator 'cc' (/path/aggregators_cc.so)": how errors name a plugin.
std::string plugin_label(const Registry& registry, Kind kind, const std::string& name);

/// Runs `call` and rethrows any exception as an Error that starts with `who` (see plugin_label).
template <class Call>
auto guard_plugin(const std::string& who, Call&& call) -> decltype(call()) {
  try {
    return std::forward<Call>(call)();
  } catch (const std::exception& e) {
    throw Error(who + ": " + e.what());
  } catch (...) {
    throw Error(who + ": threw something that is not a std::exception");
  }
}

}  // namespace phalanx::core
