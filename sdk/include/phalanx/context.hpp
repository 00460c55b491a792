// What a plugin may know about the run it is part of. Plugins take their logger, randomness and run
// facts from here and never from global registries, so two runs in one process cannot disturb each
// other and every random draw is reproducible from the run seed.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Generator.h>

#include "phalanx/export.hpp"

namespace phalanx {

struct PHALANX_EXPORT RunInfo {
  std::int64_t workers = 0;    // n, honest and Byzantine
  std::int64_t byzantine = 0;  // b, the last b workers
  std::int64_t dimension = 0;  // d, model parameter count (0 until the model is built)
  std::int64_t total_steps = 0;
  std::uint64_t seed = 0;      // the run seed
  std::string run_dir;         // output folder, empty when not writing
};

enum class LogLevel { Debug, Info, Warn, Error };

class PHALANX_EXPORT Context {
 public:
  virtual ~Context();
  virtual const RunInfo& run() const = 0;
  /// A seed private to this plugin instance, derived from the run seed and the plugin's config path.
  virtual std::uint64_t seed() const = 0;
  virtual void log(LogLevel level, const std::string& message) const = 0;

  void debug(const std::string& m) const { log(LogLevel::Debug, m); }
  void info(const std::string& m) const { log(LogLevel::Info, m); }
  void warn(const std::string& m) const { log(LogLevel::Warn, m); }
};

/// A CPU random generator seeded from `seed`; its state is a tensor (see Stateful) so it can be saved.
PHALANX_EXPORT at::Generator make_generator(std::uint64_t seed);

}  // namespace phalanx
