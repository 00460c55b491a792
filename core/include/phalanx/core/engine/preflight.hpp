// Memory preflight: before a run allocates anything large, work out what it will hold in memory and refuse
// it, naming the largest items and the keys that size them, when that does not fit in the memory
// available (or in --max-memory). The model is in docs/reliability.md ("Memory preflight").
//
// The data set, the model and every plugin's state are measured, not guessed: the preflight loads the
// data, builds the model, runs one worker's forward/backward pass and one evaluation pass on small
// batches, and feeds each plugin one zero message, all under a MemoryGuard (memory_guard.hpp) that refuses
// an allocation above the limit. Sizes that grow with the batch are fitted as a + b * batch from two batch
// sizes; per-worker state is measured on one worker and multiplied by workers.count.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/core/plugins/registry.hpp"
#include "phalanx/data.hpp"

namespace phalanx::core {

struct MemoryLimit {
  std::int64_t bytes = 0;
  std::string source;  // "this machine has 23.0 GiB available" or "--max-memory 2G"
};

/// The memory available to this process: MemAvailable from /proc/meminfo, lowered by a cgroup limit.
std::int64_t available_memory();
/// `flag` is the value of --max-memory ("" for none): 512M, 8G, 1.5GiB, or a number of bytes.
MemoryLimit memory_limit(const std::string& flag);

struct MemoryItem {
  std::string what;    // "message matrix (n x d = 8 x 159010 floats)"
  std::string keys;    // the config keys that size it
  double bytes = 0;
  bool transient = false;  // held only during one phase (a gradient pass, an aggregation)
};

struct MemoryEstimate {
  std::vector<MemoryItem> items;
  /// Persistent items plus the largest transient one: what the run holds at its peak.
  double peak() const;
  /// "memory: about 1.2 GiB at the peak (limit ...)" and one line per item, largest first.
  std::string describe(const MemoryLimit& limit) const;
};

/// Measures `spec` (see above) and throws phalanx::Error, naming the largest items and their keys, when
/// the run would not fit in `limit`. Also refuses a batch larger than a worker's share of the data.
/// The data set is loaded through data_cache() (data_cache.hpp): checking many runs of one sweep loads it once.
MemoryEstimate preflight(const PipelineSpec& spec, const Registry& registry, const MemoryLimit& limit);

/// The resident memory of this process now and at its peak so far (bytes), to compare with an estimate.
std::int64_t resident_memory();
std::int64_t peak_resident_memory();

}  // namespace phalanx::core
