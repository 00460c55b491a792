// Every call into a plugin during a run goes through guard_plugin, so whatever a plugin throws surfaces as a
// phalanx::Error that names the plugin and the library it came from (docs/plugins.md, "Errors").
#pragma once

#include <exception>
#include <new>
#include <string>
#include <utility>

#include <c10/util/Exception.h>

#include "phalanx/error.hpp"

namespace phalanx::core {

class Registry;
enum class Kind;

/// "aggregator 'cc' (/path/aggregators_cc.so)": how errors name a plugin.
std::string plugin_label(const Registry& registry, Kind kind, const std::string& name);

/// Runs `call` and rethrows any exception as an Error that starts with `who` (see plugin_label), except
/// LibTorch's own errors and std::bad_alloc: those end the run as "failed" with the engine phase, the plugin
/// and LibTorch's first line (run_failure.hpp), and their stack frames go to log.txt only.
template <class Call>
auto guard_plugin(const std::string& who, Call&& call) -> decltype(call()) {
  try {
    return std::forward<Call>(call)();
  } catch (const Error&) {
    throw;
  } catch (const c10::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(who + ": " + e.what());
  } catch (...) {
    throw Error(who + ": threw something that is not a std::exception");
  }
}

}  // namespace phalanx::core
