// The data sets this process has loaded, so that loading happens once per process and not once per use:
// a run's preflight and the run itself, the variants of a comparison, the thousands of runs a sweep
// validates, and the runs a sweep forks (they inherit the cache of the sweep that checked them).
//
// A data plugin's load() must therefore depend only on its parameters and the data seed (docs/plugins.md,
// "Data sources"); the run's partition and data.limit are applied to what was loaded, not part of the key.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/data.hpp"

namespace phalanx::core {

class DataCache {
 public:
  // A sweep varies partitions, worker counts and seeds around a few data sets: four covers a grid over
  // data sources or data seeds without keeping every data set a long sweep ever touched.
  static constexpr std::size_t kMaxEntries = 4;

  /// The data set loaded under `key`, sharing its tensors (nothing downstream writes into them).
  std::optional<Dataset> find(const std::string& key);
  /// Keeps `data` under `key`, dropping the least recently used entry beyond kMaxEntries.
  void keep(const std::string& key, const Dataset& data);
  void clear() { entries_.clear(); }
  std::size_t size() const { return entries_.size(); }

 private:
  std::vector<std::pair<std::string, Dataset>> entries_;  // most recently used last
};

/// This process's cache.
DataCache& data_cache();

/// What loading `spec`'s data depends on: the data section without its partition and limits, and the data seed.
std::string data_cache_key(const PipelineSpec& spec);

}  // namespace phalanx::core
