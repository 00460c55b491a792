#include "phalanx/core/engine/data_cache.hpp"

#include <algorithm>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/engine/training_parts.hpp"

namespace phalanx::core {

std::optional<Dataset> DataCache::find(const std::string& key) {
  auto hit = std::find_if(entries_.begin(), entries_.end(), [&](const auto& e) { return e.first == key; });
  if (hit == entries_.end()) return std::nullopt;
  std::rotate(hit, hit + 1, entries_.end());  // now the most recently used
  return entries_.back().second;
}

void DataCache::keep(const std::string& key, const Dataset& data) {
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(), [&](const auto& e) { return e.first == key; }),
                 entries_.end());
  if (entries_.size() >= kMaxEntries) entries_.erase(entries_.begin());
  entries_.emplace_back(key, data);
}

DataCache& data_cache() {
  static DataCache cache;
  return cache;
}

std::string data_cache_key(const PipelineSpec& spec) {
  return spec.data.name + "\n" + to_yaml(spec.data.params.values()) + "\n" + std::to_string(data_seed(spec, "data"));
}

}  // namespace phalanx::core
