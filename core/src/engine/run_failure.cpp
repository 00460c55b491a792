#include "phalanx/core/engine/run_failure.hpp"

#include <atomic>
#include <mutex>
#include <new>
#include <typeinfo>

#include <c10/util/Exception.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/sink.h>

#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

struct Site {
  bool set = false;
  std::string phase, kind, name;
};

std::atomic<std::int64_t> g_step{-1};
std::mutex g_site_mutex;
Site g_site;  // the first failure site since the run started (worker threads may fail too)

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

bool out_of_memory(const std::exception& error) {
  if (dynamic_cast<const std::bad_alloc*>(&error)) return true;
  const std::string text = error.what();
  return text.find("can't allocate memory") != std::string::npos ||
         text.find("Cannot allocate memory") != std::string::npos;
}

// Frames go to the file sinks only: the terminal gets the one line.
void log_to_file(spdlog::logger* logger, const std::string& text) {
  if (!logger) return;
  const auto& sinks = logger->sinks();
  for (std::size_t i = 1; i < sinks.size(); ++i) {
    sinks[i]->log(spdlog::details::log_msg(logger->name(), spdlog::level::err, text));
    sinks[i]->flush();
  }
}

}  // namespace

PhaseScope::PhaseScope(const char* phase, Kind kind, const std::string& name)
    : phase_(phase), has_plugin_(true), kind_(kind), name_(&name), uncaught_(std::uncaught_exceptions()) {}

PhaseScope::PhaseScope(const char* phase)
    : phase_(phase), has_plugin_(false), kind_(Kind::Data), name_(nullptr), uncaught_(std::uncaught_exceptions()) {}

PhaseScope::~PhaseScope() {
  if (std::uncaught_exceptions() <= uncaught_) return;
  std::lock_guard<std::mutex> lock(g_site_mutex);
  if (g_site.set) return;  // an inner scope already said where
  g_site = {true, phase_, has_plugin_ ? kind_name(kind_) : "", has_plugin_ ? *name_ : ""};
}

void set_failure_step(std::int64_t step) { g_step = step; }

std::string describe_failure(const std::exception& error, const Registry& registry) {
  Site site;
  {
    std::lock_guard<std::mutex> lock(g_site_mutex);
    site = g_site;
  }
  std::string where = site.set ? site.phase : "the run";
  if (!site.name.empty()) {
    where += " in " + site.kind + " '" + site.name + "'";
    Kind kind;
    if (kind_from_name(site.kind, kind)) {
      try {
        where += " (" + registry.find(kind, site.name).origin + ")";
      } catch (const Error&) {
      }
    }
  }
  if (g_step >= 0) where += " at step " + std::to_string(g_step.load());
  // Not every LibTorch failure is a c10::Error: a bad reshape throws std::runtime_error from
  // ATen/InferSize.h. Those read "error during ..." and are otherwise reported the same way.
  const auto* c10_error = dynamic_cast<const c10::Error*>(&error);
  const bool from_libtorch = c10_error != nullptr;
  const std::string said = first_line(c10_error ? c10_error->what_without_backtrace() : error.what());
  const std::string hint =
      out_of_memory(error)
          ? "the run ran out of memory: `phalanx validate` prints what it needs; lower training.batch_size, "
            "workers.count or the model size, or free memory"
          : site.name.empty() ? "check the config's sizes and plugins; the frames are in log.txt"
                              : "the plugin handed LibTorch something it refused: check its parameters, or report "
                                "it to the plugin's author with log.txt";
  return std::string(from_libtorch || out_of_memory(error) ? "LibTorch error" : "error") + " during " + where + ": " +
         said + ". Try: " + hint;
}

RunResult run_reporting_failures(const std::function<RunResult()>& body, const Registry& registry,
                                 spdlog::logger* logger) {
  {
    std::lock_guard<std::mutex> lock(g_site_mutex);
    g_site = {};
  }
  g_step = -1;
  auto failed = [&](const std::exception& error) {
    RunResult result;
    result.status = RunStatus::failed;
    result.message = describe_failure(error, registry);
    log_to_file(logger, result.message + "\n" + typeid(error).name() + ": " + error.what());
    return result;
  };
  try {
    return body();
  } catch (const Error&) {
    throw;  // already a phalanx error with its own message
  } catch (const std::exception& e) {  // c10::Error, std::bad_alloc, or whatever a plugin let escape
    return failed(e);
  }
}

}  // namespace phalanx::core
